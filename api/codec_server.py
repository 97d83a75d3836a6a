"""The codec server: decrypted Temporal payloads for operators, in the Temporal UI and the CLI.

Temporal's remote-codec protocol: `POST /decode` and `POST /encode` take and return `Payloads` as
protobuf JSON. The Temporal UI calls it from the operator's browser (so it answers CORS for the
UIs in `SORAPI_CODEC_CORS_ORIGINS`); `temporal workflow show --codec-endpoint` calls it too.

It is its own process (`sorapi codec-server`) with the payload key only, next to the Temporal UI it
serves and with the same exposure: loopback by default. With `SORAPI_CODEC_TOKEN` set it requires
`Authorization: Bearer <token>` (the CLI's `--codec-auth`) and may listen on other interfaces.
"""

from __future__ import annotations

import hmac

from google.protobuf import json_format
from litestar import Litestar, Request, Response, post
from litestar.config.cors import CORSConfig
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from temporalio.api.common.v1 import Payloads

from sorapi.adapters.payload_codec import EncryptionCodec, PayloadUnreadable, payload_keys
from sorapi.adapters.settings import Settings, split_list
from sorapi.api.auth import authorization_header

JSON = "application/json"


def create_codec_app(settings: Settings) -> Litestar:
    codec = EncryptionCodec(payload_keys(settings))

    def require_token(connection: ASGIConnection, _handler: BaseRouteHandler) -> None:
        if not settings.codec_token:
            return
        scheme, _, token = authorization_header(connection.scope["headers"]).partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), settings.codec_token.encode()):
            raise NotAuthorizedException("missing or wrong codec token", headers={"WWW-Authenticate": "Bearer"})

    async def payloads(request: Request) -> Payloads:
        try:
            return json_format.Parse(await request.body(), Payloads())
        except json_format.ParseError as exc:
            raise ValidationException(f"the body is not Payloads as protobuf JSON: {exc}") from None

    def answer(result: list) -> Response[bytes]:
        return Response(json_format.MessageToJson(Payloads(payloads=result)).encode(), media_type=JSON)

    @post("/decode", status_code=200, guards=[require_token])
    async def decode(request: Request) -> Response[bytes]:
        try:
            return answer(await codec.decode((await payloads(request)).payloads))
        except PayloadUnreadable as exc:
            raise ValidationException(str(exc)) from None

    @post("/encode", status_code=200, guards=[require_token])
    async def encode(request: Request) -> Response[bytes]:
        return answer(await codec.encode((await payloads(request)).payloads))

    return Litestar(
        route_handlers=[decode, encode],
        cors_config=CORSConfig(
            allow_origins=split_list(settings.codec_cors_origins),
            allow_methods=["POST"],
            allow_headers=["Content-Type", "X-Namespace", "Authorization"],
            allow_credentials=True,
        ),
        openapi_config=None,
    )
