"""What the editors need from the daemon: read, list and replace resources. `apimd.client.Client`
implements it; snapshot tests pass an object with fixed data."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel


class ResourceClient(Protocol):
    """The resource calls of `apimd.client.Client` (GET, list and PUT of `/v1/<kind>`)."""

    async def list(self, kind: str) -> list[BaseModel]: ...

    async def get(self, kind: str, name: str, *, reveal: bool = False) -> BaseModel: ...

    async def put(
        self, kind: str, name: str, resource: BaseModel | dict[str, Any]
    ) -> BaseModel: ...
