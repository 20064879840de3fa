"""Systems a user writes: each a file of its own, run by the same command line as the shipped ones."""
