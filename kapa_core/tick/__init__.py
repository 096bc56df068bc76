"""TICKscript: lexer, parser, AST, semantic checks and the lambda compiler."""
