"""What the SDK test scripts share: strict validation with the SDK's own models, collecting
mismatches instead of stopping at the first, and the end of a turn."""
import json
import time

import pydantic

failures = []


def strict(name, model, value):
    """Validates `value` (JSON) against `model` in strict mode, as JSON; records a mismatch."""
    try:
        pydantic.TypeAdapter(model).validate_json(json.dumps(value), strict=True)
        print("ok", name, flush=True)
    except pydantic.ValidationError as e:
        failures.append(f"{name}: " + "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors()[:6]))
        print("MISMATCH", name, flush=True)


def refused(name, status, call):
    """Calls `call`, which must fail with HTTP `status`; records it if it does not."""
    import anthropic
    try:
        call()
        failures.append(f"{name}: accepted")
    except anthropic.APIStatusError as e:
        if e.status_code != status:
            failures.append(f"{name}: {e.status_code} instead of {status}: {e.message}")


def wait_idle(beta, session_id, timeout=60):
    """Waits for the session's turn to end."""
    deadline = time.time() + timeout
    while beta.sessions.retrieve(session_id).status != "idle":
        if time.time() > deadline:
            raise AssertionError(f"{session_id}: the turn did not end within {timeout} s")
        time.sleep(0.2)


def read_stream(response, into, until="session.status_idle"):
    """Appends each event of a raw SSE stream (`with_streaming_response.stream`) to `into`, as
    JSON, until one of type `until`."""
    for line in response.iter_lines():
        if line.startswith("data: "):
            event = json.loads(line[len("data: "):])
            into.append(event)
            if event.get("type") == until:
                return


def finish(title):
    """Exits 1 with the mismatches, or prints the line the Swift side waits for."""
    import sys
    if failures:
        print("\n".join([title + ":"] + failures), flush=True)
        sys.exit(1)
    print("all checks passed", flush=True)
