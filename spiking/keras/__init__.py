"""The Keras/NengoDL pipeline: grammar-search phenotypes as Keras models, their fitting, and the NengoDL conversion (TensorFlow only: no torch here)."""
