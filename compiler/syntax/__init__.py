"""Stage 1, syntax: .iq text -> AST (parser.py, grammar.lark), and back (formatter.py)."""
