"""How long and on what batches models train, and which detector lengths they try: what
`dbtools train` (`RunOptions`) and `dbtools calibrate` (`Protocol`) share."""

from __future__ import annotations

from dataclasses import dataclass

from dbtools.errors import UsageError


@dataclass(frozen=True)
class Schedule:
    """The training schedule of a run.

    Attributes
    ----------
    steps : SGD steps per model.
    checkpoint_every : steps between checkpoints (each one a candidate for the model kept).
    batch_size : rows per model and step.
    seed : the seed of every random choice of the run.
    detector_lens : the detector lengths tried (how depends on the command); empty: each spec's own.
    """

    steps: int = 1500
    checkpoint_every: int = 250
    batch_size: int = 64
    seed: int = 0
    # short detectors suit some proteins and long ones others, so both are tried (see docs/development.md)
    detector_lens: tuple[int, ...] = (10, 16)

    def validate(self, counts: tuple[str, ...] = ()) -> None:
        """UsageError, naming the option, for a count below 1 (`counts`, then the schedule's own)
        or a detector length below 2."""
        for name in counts + ("steps", "checkpoint_every", "batch_size"):
            if getattr(self, name) < 1:
                raise UsageError(f"--{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        check_detector_lens(self.detector_lens)


def parse_detector_lens(text: str) -> tuple[int, ...]:
    """`--detector-len`: one detector length, or several comma-separated, each at least 2.

    Parameters
    ----------
    text : the option's value, e.g. "10,16".

    Returns
    -------
    The lengths in the order given. Raises UsageError for anything else.
    """
    try:
        lengths = tuple(int(x) for x in text.split(","))
    except ValueError:
        raise _bad_lengths(text) from None
    check_detector_lens(lengths, text)
    return lengths


def check_detector_lens(lengths: tuple[int, ...], given: str | None = None) -> None:
    """UsageError if a detector length is below 2 (`given`: the text they were read from)."""
    if any(m < 2 for m in lengths):
        raise _bad_lengths(",".join(map(str, lengths)) if given is None else given)


def _bad_lengths(text: str) -> UsageError:
    return UsageError(f"--detector-len {text}: expected lengths of at least 2, comma-separated")
