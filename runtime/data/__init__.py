"""A party's own data: the file checks and the loader that validates rows against the catalog."""
