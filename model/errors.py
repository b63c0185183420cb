"""The one root of the errors `model/` raises on purpose.

Packages, manifests, flavors, inference scripts, the registry publisher and the
model server each have their own error classes (`ModelLoadError`, `PackageError`,
`ManifestError`, `BadRequest`, `PublishError`, the server's `Problem`...); all of
them derive from `ByomModelError`, which derives from byom's own root
`shared.errors.ByomError`, so that a caller can tell byom's refusals from bugs
with one `except`.

Not to be confused with `shared.errors.ModelError` (and botocore's `ModelError`):
those mean the endpoint answered a request with the model's error.
"""

from __future__ import annotations

from shared.errors import ByomError


class ByomModelError(ByomError):
    """Root of every error the model packages, flavors and model server raise on purpose."""
