"""Object names to classes: the class table, the name normaliser, rule tables, check, report, audit."""
