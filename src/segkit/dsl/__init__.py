"""The rule language: tokens, parser, AST, type checker, printer, builder and dict form.

See ``docs/rules.md`` for the language reference.
"""

from segkit.dsl.rule import Rule, as_rule, is_valid, iter_errors, parse

__all__ = ["Rule", "as_rule", "is_valid", "iter_errors", "parse"]
