"""Runs the model generator on ONE dedicated thread and caches its results.

bpy (used by modelgen for FBX/USDZ) is not thread-safe, so every call to the
generator, and its import, happens on the same thread. Results are cached by
(prompt, format, quality, image hash): the generator is deterministic, and
idempotent retries or repeated prompts must not pay for it twice.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import importlib
import logging
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable

log = logging.getLogger("sandbox.generator")

GenerateFn = Callable[..., bytes]
CacheKey = tuple[str, str, str, str]
CACHE_ENTRIES = 256
_Work = tuple[concurrent.futures.Future[bytes], str, str, str, bytes | None]


def load_generator(mode: str) -> tuple[GenerateFn, str]:
    """The generate_model function for --models real|fake|auto, and a label for it."""
    if mode == "fake":
        from .fakemodels import generate_model as fake

        return fake, "fake"
    try:
        module = importlib.import_module("sandbox.modelgen")
        fn: GenerateFn = module.generate_model
    except Exception as exc:
        if mode != "auto":
            raise
        # auto is for tests while modelgen is being written: say loudly what happened.
        from .fakemodels import generate_model as fake

        log.warning("sandbox.modelgen is not usable (%r): serving fake models", exc)
        return fake, "fake"
    return fn, "real"


class ModelGenerator:
    """A single worker thread in front of ``generate_model``."""

    def __init__(
        self, mode: str = "real", *, generator: GenerateFn | None = None, seed: int = 0
    ) -> None:
        self._mode = mode
        self._fn = generator
        self.kind = "injected" if generator is not None else mode
        self._seed = seed
        self._queue: queue.Queue[_Work | None] = queue.Queue()
        self._cache: OrderedDict[CacheKey, concurrent.futures.Future[bytes]] = OrderedDict()
        self._lock = threading.Lock()
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(target=self._run, name="sandbox-modelgen", daemon=True)

    def start(self, timeout: float = 120.0) -> None:
        """Start the thread and wait until the generator module is imported (or raise why not)."""
        self._thread.start()
        self._ready.result(timeout=timeout)

    def stop(self) -> None:
        self._queue.put(None)

    @staticmethod
    def key(prompt: str, fmt: str, quality: str, image: bytes | None) -> CacheKey:
        digest = hashlib.sha256(image).hexdigest() if image else ""
        return (prompt, fmt, quality, digest)

    def request(
        self, prompt: str, fmt: str, quality: str, image: bytes | None
    ) -> concurrent.futures.Future[bytes]:
        key = self.key(prompt, fmt, quality, image)
        with self._lock:
            fut = self._cache.get(key)
            if fut is not None:
                self._cache.move_to_end(key)
                return fut
            fut = concurrent.futures.Future()
            self._cache[key] = fut
            # Jobs keep their own reference to the future, so evicting here is safe.
            while len(self._cache) > CACHE_ENTRIES:
                oldest = next(iter(self._cache))
                if not self._cache[oldest].done():
                    break
                del self._cache[oldest]
        self._queue.put((fut, prompt, fmt, quality, image))  # each future is queued once
        return fut

    def cancel_pending(self) -> int:
        """Drop queued work nobody waits for any more (after a reset), so the next
        test's model is not stuck behind the last test's backlog."""
        dropped = 0
        with self._lock:
            for key, fut in list(self._cache.items()):
                if fut.cancel():  # only succeeds for work not started yet
                    del self._cache[key]
                    dropped += 1
        return dropped

    def _run(self) -> None:
        try:
            if self._fn is None:
                self._fn, self.kind = load_generator(self._mode)
        except BaseException as exc:  # report any import failure to start()
            self._ready.set_exception(exc)
            return
        self._ready.set_result(None)
        fn = self._fn
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, prompt, fmt, quality, image = item
            if not fut.set_running_or_notify_cancel():  # cancelled by a reset
                continue
            try:
                data = fn(prompt, fmt, quality, image=image, seed=self._seed)
                if not isinstance(data, (bytes, bytearray)) or not data:
                    raise TypeError(f"generator returned {type(data).__name__}, not file bytes")
                fut.set_result(bytes(data))
            except BaseException as exc:  # stored in the job as its failure
                log.warning("generation failed for %s/%s: %r", fmt, quality, exc)
                fut.set_exception(exc)
