"""Issue #23: docs/api.md lists every method the pinned SDK has for the resources Drover serves,
each `served` or `not served`, and a method that is not served is refused with the documented
answer (404 `not_found_error` saying Drover does not serve it), never a bare "no route". Run by
DroverAPITests.SDKTests with DROVER_API_URL and DROVER_KEY_A.
"""
import os
import pathlib
import re

import anthropic
from anthropic._resource import SyncAPIResource

from checks import failures, finish

client = anthropic.Anthropic(api_key=os.environ["DROVER_KEY_A"], base_url=os.environ["DROVER_API_URL"], max_retries=0)
RESOURCES = ["agents", "environments", "sessions", "files", "skills", "vaults", "memory_stores", "dreams", "deployments", "deployment_runs"]


def methods(resource, prefix):
    """The public methods of an SDK resource and its sub-resources, as `beta.x.y`."""
    found = []
    for name in sorted(dir(type(resource))):
        if name.startswith("_") or name in ("with_raw_response", "with_streaming_response"):
            continue
        value = getattr(resource, name)
        if isinstance(value, SyncAPIResource):
            found += methods(value, f"{prefix}.{name}")
        elif callable(value):
            found.append(f"{prefix}.{name}")
    return found


sdk = {m for r in RESOURCES for m in methods(getattr(client.beta, r), f"beta.{r}")}
docs = pathlib.Path(__file__).resolve().parents[2] / "docs" / "api.md"
section = docs.read_text().split("## Every SDK method", 1)[-1].split("\n## ", 1)[0]
listed = dict(re.findall(r"^\| `(beta\.[a-z_.]+)` \| (served|not served)", section, re.M))
for missing in sorted(sdk - listed.keys()):
    failures.append(f"docs/api.md does not list {missing}")
for extra in sorted(listed.keys() - sdk):
    failures.append(f"docs/api.md lists {extra}, which the SDK does not have")
print(f"ok {len(sdk)} SDK methods, {sum(1 for s in listed.values() if s == 'served')} served", flush=True)

finish("SDK methods")
