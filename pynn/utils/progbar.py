"""Progbar: Keras's text progress bar, for custom loops (fit's own bar is
pynn.callbacks.ProgbarLogger)."""

import math
import os
import sys
import time

import numpy as np

from . import io_utils


class Progbar:
    """Displays a progress bar, as keras.utils.Progbar: the same text, character for character.

    Metrics are averaged over the steps seen (weighted by the steps each update covers) unless
    named in `stateful_metrics` (shown as given); `stateless_metrics` inverts that default.

    Args:
        target: total number of steps expected, None if unknown.
        width: the bar's width in characters.
        verbose: 0 (silent), 1 (a bar redrawn in place), 2 (one line at the end).
        interval: the least time, in seconds, between two redraws.
        stateful_metrics: names of metrics shown as given, not averaged.
        stateless_metrics: names of metrics averaged (then all others are shown as given).
        unit_name: what a step is called ("step", "sample").

    Example:
        >>> bar = pynn.utils.Progbar(10)
        >>> for i in range(10):
        ...     bar.update(i + 1, values=[("loss", 0.1 * i)])
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Only one of `stateful_metrics` or `stateless_metrics` can be "
                             "provided.")
        if target is not None and (isinstance(target, bool) or not isinstance(
                target, (int, np.integer)) or target < 0):
            raise ValueError(f"Progbar: target must be an int >= 0 or None, got {target!r}")
        if verbose not in (0, 1, 2):
            raise ValueError(f"Progbar: verbose must be 0, 1 or 2, got {verbose!r}")
        self.target, self.width, self.verbose = target, width, verbose
        self.interval, self.unit_name = interval, unit_name
        if stateful_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = set(stateful_metrics), None
        elif stateless_metrics is not None:
            self.stateful_metrics, self.stateless_metrics = None, set(stateless_metrics)
        else:
            self.stateful_metrics, self.stateless_metrics = set(), None
        self._dynamic_display = ((hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
                                 or "ipykernel" in sys.modules or "posix" in sys.modules
                                 or "PYCHARM_HOSTED" in os.environ)
        self._seen_so_far = 0
        self._values = {}
        self._values_order = []
        self._start = time.time()
        self._last_update = 0
        self._time_at_epoch_start = self._start
        self._time_after_first_step = None
        self._prev_total_width = 0

    def update(self, current, values=None, finalize=None):
        """Moves the bar to step `current`.

        Args:
            current: the index of the current step.
            values: a list of `(name, value_for_last_step)` pairs.
            finalize: whether this is the last update; `current >= target` when None.
        """
        if finalize is None:
            finalize = False if self.target is None else current >= self.target
        for k, v in values or []:
            if k not in self._values_order:
                self._values_order.append(k)
            stateless = (k not in self.stateful_metrics if self.stateful_metrics is not None
                         else k in self.stateless_metrics)
            if not stateless or finalize:
                self._values[k] = [v, 1]
            else:
                base = max(current - self._seen_so_far, 1)
                if k not in self._values:
                    self._values[k] = [v * base, base]
                else:
                    self._values[k][0] += v * base
                    self._values[k][1] += base
        self._seen_so_far = current
        now = time.time()
        per_unit = self._estimate_step_duration(current, now)
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return
            self._draw(current, now, per_unit, finalize)
        elif self.verbose == 2 and finalize and self.target:
            digits = int(math.log10(self.target)) + 1
            info = f"{current:{digits}d}/{self.target} - {now - self._start:.0f}s"
            info += f" -{self._format_time(per_unit, self.unit_name)}"
            for k in self._values_order:
                avg = self._average(k)
                info += f" - {k}: {avg:.4f}" if avg > 1e-3 else f" - {k}: {avg:.4e}"
            io_utils.print_msg(info + "\n", line_break=False)
        self._last_update = now

    def _draw(self, current, now, per_unit, finalize) -> None:
        if not io_utils.is_interactive_logging_enabled() and not finalize:
            return  # a log gets the finished line only
        message = ("\b" * self._prev_total_width + "\r") if self._dynamic_display else "\n"
        special = 0  # the escape codes' characters, which take no room on screen
        if self.target:
            digits = int(math.log10(self.target)) + 1
            bar = f"\x1b[1m{current:{digits}d}/{self.target}\x1b[0m "
            special += 8
            filled = int(self.width * float(current) / self.target)
            if filled > 0:
                bar += f"\33[32m{'━' * filled}\x1b[0m"
                special += 9
            bar += f"\33[37m{'━' * (self.width - filled)}\x1b[0m"
            special += 9
        else:
            bar = f"{int(current):7d}/Unknown"
        message += bar
        if self.target and not finalize:
            eta = per_unit * (self.target - current)
            if eta > 3600:
                when = f"{int(eta // 3600)}:{int((eta % 3600) // 60):02d}:{int(eta % 60):02d}"
            elif eta > 60:
                when = f"{int(eta // 60)}:{int(eta % 60):02d}"
            else:
                when = f"{int(eta)}s"
            info = f" \x1b[1m{when}\x1b[0m"
        else:
            info = f" \x1b[1m{now - self._start:.0f}s\x1b[0m"
        special += 8
        info += self._format_time(per_unit, self.unit_name)
        for k in self._values_order:
            avg = self._average(k)
            info += f" - {k}: {avg:.4f}" if abs(avg) > 1e-3 else f" - {k}: {avg:.4e}"
        message += info
        width = len(bar) + len(info) - special
        if self._prev_total_width > width:
            message += " " * (self._prev_total_width - width)
        if finalize:
            message += "\n"
        io_utils.print_msg(message, line_break=False)
        self._prev_total_width = width

    def _average(self, k):
        total, count = self._values[k]
        if not isinstance(total, float):
            total = np.mean(total)
        return total / max(1, count)

    def add(self, n, values=None):
        """Moves the bar `n` steps on."""
        self.update(self._seen_so_far + n, values)

    def _format_time(self, per_unit, unit_name):
        if per_unit >= 1 or per_unit == 0:
            return f" {per_unit:.0f}s/{unit_name}"
        if per_unit >= 1e-3:
            return f" {per_unit * 1000.0:.0f}ms/{unit_name}"
        return f" {per_unit * 1000000.0:.0f}us/{unit_name}"

    def _estimate_step_duration(self, current, now):
        """Seconds per step, leaving the first (often slower) step out once there are others."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit
