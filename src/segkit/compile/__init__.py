"""Back ends that turn a checked rule into something that evaluates it."""

from segkit.compile.predicate import Predicate, compile_predicate

__all__ = ["Predicate", "compile_predicate"]
