# A package, as tests/ is: its modules import as tests.recipes.*, never as top-level names.
