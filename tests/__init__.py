# A regular package, so that ``tests.nets_zoo:TinyGenerator`` (import paths in recipes under test)
# finds this folder even where a library installed a top-level ``tests`` package of its own.
