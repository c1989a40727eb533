"""Times pywa on Meta webhook deliveries the way a receiver built on it handles them: the
signature check (`webhook_update_validator`: HMAC-SHA256 of the raw body), then
`webhook_update_handler` (json.loads into a RawUpdate, the update's hash, the handler type
by field and message type, and the typed update built by its `from_update`).

Usage: pywa_parse.py <app secret> <runs> <file>...
Prints one line: `pywa_us_per_delivery <float> deliveries <n>`.
Used by the Rust bench `meta_parse` (shared/benches/meta_parse.rs), which runs our parser on
the same files in the same run.
"""

import hashlib
import hmac
import logging
import sys
import time

from pywa import WhatsApp, types

logging.disable(logging.CRITICAL)


def main() -> None:
    secret, runs, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    bodies = []
    for path in files:
        with open(path, "rb") as f:
            body = f.read()
        sig = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        bodies.append((body, sig))
    wa = WhatsApp(
        phone_id="106540352242922",
        token="bench",
        server=None,
        verify_token="bench",
        app_secret=secret,
        validate_updates=True,
        filter_updates=False,
        skip_duplicate_updates=False,
    )
    built = []

    # A raw-update handler that keeps nothing: pywa still builds the typed update for every
    # delivery whose field it knows (`_call_handlers` calls `from_update` before callbacks).
    @wa.on_raw_update
    def _raw(_client: WhatsApp, _update: types.RawUpdate) -> None:
        pass

    # Check once that every delivery is accepted, so the loop times real work.
    for body, sig in bodies:
        assert wa.webhook_update_validator(body, sig) is None
        assert wa.webhook_update_handler(body) == ("ok", 200)
    start = time.perf_counter()
    for _ in range(runs):
        for body, sig in bodies:
            if wa.webhook_update_validator(body, sig) is None:
                built.append(wa.webhook_update_handler(body))
        built.clear()
    elapsed = time.perf_counter() - start
    n = runs * len(bodies)
    print(f"pywa_us_per_delivery {elapsed * 1e6 / n:.3f} deliveries {n}")


if __name__ == "__main__":
    main()
