"""What kind of failure an error is, said once by the error itself: input someone must
correct, or an operation that failed. Each layer's error classes derive from one of these,
and whoever reports an error (the `farmpool` command: exit 2 or 1) asks only this."""

from __future__ import annotations


class BadInput(Exception):
    """Input someone must correct: an argument, the config, a file, stored terms."""


class OperationFailed(Exception):
    """The node, the wallet, the database or the environment could not do what was asked."""


class FieldError(ValueError, BadInput):
    """Bad input in one named place: `where` names it (a config path, an option, a field),
    `message` says what is wrong; the text is `PREFIXwhere: message`."""

    def __init__(self, where: str, message: str, prefix: str = "") -> None:
        super().__init__(f"{prefix}{where}: {message}")
        self.where = where
        self.message = message
