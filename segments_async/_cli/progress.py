"""The progress bar: rich's, on stderr, with the count, the rate and the time left.

rich comes with the ``cli`` extra and is imported only when a bar is drawn; without it
(or off a terminal, or with ``--quiet``) ``NoBar`` stands in and nothing is shown.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Bar", "NoBar", "rich_bar"]


class Bar(Protocol):
    def start(self, total: int | None) -> None: ...
    def advance(self, count: int) -> None: ...
    def close(self) -> None: ...


class NoBar:
    """No progress shown."""

    def start(self, total: int | None) -> None:
        pass

    def advance(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def rich_bar(label: str) -> Bar:
    """A rich progress bar on stderr: count, rate and ETA; ``NoBar`` without rich."""
    try:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            Task,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text
    except ImportError:
        return NoBar()

    class RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text("" if speed is None else f"{speed:,.0f}/s", style="progress.data.speed")

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        redirect_stdout=False,  # stdout is data: it must never pass through the console
    )
    task = progress.add_task(label, total=None)

    class RichBar:
        def start(self, total: int | None) -> None:
            progress.update(task, total=total)
            progress.start()

        def advance(self, count: int) -> None:
            progress.advance(task, count)

        def close(self) -> None:
            if progress.live.is_started:
                done = progress.tasks[0].completed
                progress.update(task, total=done, completed=done)  # an estimate, now exact
                progress.stop()

    return RichBar()
