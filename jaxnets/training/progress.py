"""A progress line on stderr for long training runs."""
import math
import sys
import time


class Progress:
    """One status line on stderr, rewritten in place on a terminal; otherwise a line at
    most every `interval` seconds (and the last one)."""

    def __init__(self, total, enabled, stream=None, interval=5.0):
        self.total, self.enabled = total, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval
        self.start = time.perf_counter()
        self.last_print = -math.inf
        self.line = ""
        self.line_printed = True

    def update(self, step, loss, train_acc=None, val_acc=None, final=False):
        if not self.enabled:
            return
        width = 24
        filled = int(width * step / self.total) if self.total else width
        parts = [f"[{'#' * filled}{'.' * (width - filled)}] step {step}/{self.total}"]
        if loss is not None:
            parts.append(f"loss {loss:.6g}")
        if train_acc is not None:
            parts.append(f"train {train_acc:.4f}")
        if val_acc is not None:
            parts.append(f"val {val_acc:.4f}")
        parts.append(f"{time.perf_counter() - self.start:.1f}s")
        self.line = "  ".join(parts)
        self.line_printed = False
        now = time.perf_counter()
        if self.tty:
            self.stream.write("\r" + self.line + "\x1b[K")
            self.stream.flush()
        elif final or now - self.last_print >= self.interval:
            self.stream.write(self.line + "\n")
            self.stream.flush()
            self.last_print = now
            self.line_printed = True

    def close(self):
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\n")
        elif self.line and not self.line_printed:
            self.stream.write(self.line + "\n")
        self.stream.flush()
