"""Settings and descriptions: every setting defined, defaulted and validated once; vocabularies; the energy convention; phenotypes."""
