"""One ACME certificate order with DNS-01 challenges that this server's own DNS listener answers.

The ``acme`` package (certbot's protocol library) signs and sends every
request. Its calls block, so each runs in a worker thread while the event
loop keeps answering DNS, including the CA's queries for the challenge TXT
records. Each call is one HTTP request bounded by ``-acme-request-timeout``,
and the polling between them happens here, on the loop, so cancelling an
order (at shutdown) never waits for more than one request.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import requests
from acme import challenges, crypto_util, messages
from acme import client as acme_client
from acme import errors as acme_errors
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWK

from interactsh import __version__
from interactsh.acme_storage import new_private_key_pem
from interactsh.errors import AcmeError

log = logging.getLogger("interactsh.acme")

USER_AGENT = f"interactsh-server/{__version__} (Python acme)"
# Seconds between polls when the server sends no Retry-After, and the longest wait that one may ask for.
DEFAULT_POLL_DELAY = 1.0
MAX_POLL_DELAY = 10.0

Result = TypeVar("Result")
# TXT values published for each lower-case challenge name without the trailing dot.
TxtRecords = MutableMapping[str, list[str]]


@dataclass(frozen=True)
class AcmeSettings:
    """ACME server, account contact and time limits of certificate orders."""

    directory_url: str
    # PEM file of the CA certificates trusted for the ACME server, or empty for the system's trust store.
    ca_bundle: str
    email: str
    order_timeout: float
    request_timeout: float


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate chain as the CA returned it and the key it certifies, both PEM."""

    fullchain_pem: bytes
    private_key_pem: bytes


@dataclass(frozen=True)
class _Challenge:
    """A DNS-01 challenge and the TXT record that answers it."""

    authorization: messages.AuthorizationResource
    body: messages.ChallengeBody
    identifier: str
    txt_name: str
    txt_value: str


class AcmeOrder:
    """Orders certificates from one ACME server with one account key."""

    def __init__(self, settings: AcmeSettings, account_key: JWK, txt_records: TxtRecords) -> None:
        self.settings = settings
        self.account_key = account_key
        self.txt_records = txt_records

    async def obtain(self, names: list[str]) -> IssuedCertificate:
        """Order a certificate for ``names`` and return it once issued.

        Raises :class:`AcmeError` naming the failed step, also when the order
        takes longer than ``order_timeout`` seconds.
        """
        timeout = self.settings.order_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self._obtain(names)
        except TimeoutError:
            raise AcmeError(
                f"the certificate order for {', '.join(names)} timed out after {timeout:g} s; "
                "raise -acme-order-timeout, or check that the ACME server can reach this server's DNS"
            ) from None

    async def _obtain(self, names: list[str]) -> IssuedCertificate:
        client = await self._connect()
        key_pem = new_private_key_pem()
        csr_pem = crypto_util.make_csr(key_pem, names)
        order = await self._call("create the certificate order", client.new_order, csr_pem)
        pending = [self._dns_challenge(authorization) for authorization in order.authorizations]
        challenges_to_answer = [challenge for challenge in pending if challenge is not None]
        self._publish(challenges_to_answer)
        try:
            for challenge in challenges_to_answer:
                response = challenge.body.chall.response(self.account_key)
                await self._call(
                    f"answer the challenge for {challenge.identifier}",
                    client.answer_challenge,
                    challenge.body,
                    response,
                )
            for challenge in challenges_to_answer:
                await self._wait_until_valid(client, challenge)
            chain = await self._finalize(client, order)
        finally:
            self._withdraw(challenges_to_answer)
        return IssuedCertificate(chain.encode("utf-8"), key_pem)

    async def _connect(self) -> acme_client.ClientV2:
        """Read the directory and register the account (or find the existing one for this key)."""
        settings = self.settings
        verify: bool | str = True
        if settings.ca_bundle:
            if not Path(settings.ca_bundle).is_file():
                raise AcmeError(f"-acme-ca-bundle {settings.ca_bundle!r} is not a readable file: pass a PEM file")
            verify = settings.ca_bundle
        network = acme_client.ClientNetwork(
            self.account_key,
            alg=ES256,
            verify_ssl=verify,  # type: ignore[arg-type]  # requests takes a CA file path as well as a bool
            user_agent=USER_AGENT,
            timeout=math.ceil(settings.request_timeout),
        )
        directory = await self._call(
            "read the ACME directory", acme_client.ClientV2.get_directory, settings.directory_url, network
        )
        client = acme_client.ClientV2(directory, network)
        if client.external_account_required():
            raise AcmeError(
                f"the ACME server {settings.directory_url} requires external account binding, which this server "
                "does not support; use a CA without it, such as Let's Encrypt"
            )
        registration = messages.NewRegistration.from_data(email=settings.email, terms_of_service_agreed=True)
        await self._call("register the ACME account", _register, client, registration)
        return client

    def _dns_challenge(self, authorization: messages.AuthorizationResource) -> _Challenge | None:
        """Return the DNS-01 challenge of a pending authorization, or ``None`` when it is already valid."""
        body = authorization.body
        domain = str(body.identifier.value)
        identifier = f"*.{domain}" if body.wildcard else domain
        if body.status == messages.STATUS_VALID:
            log.debug("the authorization for %s is still valid; no challenge needed", identifier)
            return None
        if body.status != messages.STATUS_PENDING:
            raise AcmeError(f"the authorization for {identifier} is {body.status.name}, not pending: order again later")
        for challenge in body.challenges:
            if isinstance(challenge.chall, challenges.DNS01):
                return _Challenge(
                    authorization,
                    challenge,
                    identifier,
                    challenge.chall.validation_domain_name(domain).lower().rstrip("."),
                    challenge.chall.validation(self.account_key),
                )
        raise AcmeError(
            f"the ACME server offers no dns-01 challenge for {identifier}; this server validates only with DNS-01"
        )

    def _publish(self, pending: list[_Challenge]) -> None:
        """Publish every TXT value before any challenge response is sent, because ``*.D`` and ``D`` share one name."""
        by_name: dict[str, list[str]] = {}
        for challenge in pending:
            by_name.setdefault(challenge.txt_name, []).append(challenge.txt_value)
        for name, values in by_name.items():
            self.txt_records[name] = values
            log.debug("published %d TXT values for %s", len(values), name)

    def _withdraw(self, pending: list[_Challenge]) -> None:
        for name in {challenge.txt_name for challenge in pending}:
            self.txt_records.pop(name, None)

    async def _wait_until_valid(self, client: acme_client.ClientV2, challenge: _Challenge) -> None:
        """Poll an authorization until the CA has validated it; raise :class:`AcmeError` when it failed."""
        authorization = challenge.authorization
        while True:
            authorization, response = await self._call(
                f"read the authorization for {challenge.identifier}", client.poll, authorization
            )
            status = authorization.body.status
            if status == messages.STATUS_VALID:
                log.debug("the ACME server validated %s", challenge.identifier)
                return
            if status not in (messages.STATUS_PENDING, messages.STATUS_PROCESSING):
                raise AcmeError(
                    f"the ACME server could not validate {challenge.identifier} (status {status.name}): "
                    f"{_challenge_error(authorization)}; check that the NS records of the domain point to this server "
                    "and that its DNS port is reachable from the internet on port 53"
                )
            await asyncio.sleep(_retry_delay(response))

    async def _finalize(self, client: acme_client.ClientV2, order: messages.OrderResource) -> str:
        """Send the CSR once the order is ready, wait until it is valid and return the PEM chain."""
        finalized = False
        while True:
            body, response = await self._call("read the certificate order", _fetch_order, client, order.uri)
            if body.status == messages.STATUS_READY and not finalized:
                await self._call("finalize the certificate order", client.begin_finalization, order)
                finalized = True
                continue
            if body.status == messages.STATUS_VALID and body.certificate:
                return await self._call("download the certificate", _fetch_certificate, client, body.certificate)
            if body.status == messages.STATUS_INVALID:
                reason = body.error.detail if body.error is not None else "no reason given"
                raise AcmeError(f"the ACME server rejected the certificate order: {reason}")
            await asyncio.sleep(_retry_delay(response))

    async def _call(self, step: str, function: Callable[..., Result], *args: Any) -> Result:
        """Run one blocking ACME request in a worker thread, turning its errors into :class:`AcmeError`."""
        url = self.settings.directory_url
        try:
            return await asyncio.to_thread(function, *args)
        except messages.Error as error:
            raise AcmeError(f"could not {step}: the ACME server {url} returned an error: {error}") from None
        except acme_errors.Error as error:
            raise AcmeError(f"could not {step} with the ACME server {url}: {error or type(error).__name__}") from None
        except requests.RequestException as error:
            raise AcmeError(
                f"could not {step}: the ACME server {url} could not be reached: {error}; "
                "check -acme-directory, -acme-ca-bundle and the network"
            ) from None
        except (DeserializationError, ValueError, KeyError) as error:
            raise AcmeError(f"could not {step}: the ACME server {url} sent an invalid reply: {error!r}") from None


def _register(client: acme_client.ClientV2, registration: messages.NewRegistration) -> None:
    """Register a new account, or use the existing one when the server already has an account for the key."""
    try:
        client.new_account(registration)
    except acme_errors.ConflictError as existing:
        client.net.account = messages.RegistrationResource(uri=existing.location, body=messages.Registration())
        log.debug("using the existing ACME account %s", existing.location)
    else:
        log.info("registered a new ACME account for %s", ", ".join(registration.emails))


def _fetch_order(client: acme_client.ClientV2, url: str) -> tuple[messages.Order, requests.Response]:
    """Read an order with POST-as-GET (RFC 8555 section 6.3)."""
    response = client.net.post(url, None, new_nonce_url=client.directory["newNonce"])
    return messages.Order.from_json(response.json()), response


def _fetch_certificate(client: acme_client.ClientV2, url: str) -> str:
    response = client.net.post(url, None, new_nonce_url=client.directory["newNonce"])
    return str(response.text)


def _challenge_error(authorization: messages.AuthorizationResource) -> str:
    for challenge in authorization.body.challenges:
        if challenge.error is not None:
            return str(challenge.error.detail or challenge.error)
    return "no reason given"


def _retry_delay(response: requests.Response) -> float:
    """Return the seconds to wait before the next poll: the server's Retry-After, within bounds."""
    try:
        delay = float(response.headers.get("Retry-After", DEFAULT_POLL_DELAY))
    except ValueError:
        # An HTTP-date Retry-After is rare in ACME, so the default poll delay replaces it.
        delay = DEFAULT_POLL_DELAY
    if not math.isfinite(delay):
        delay = DEFAULT_POLL_DELAY
    return min(max(delay, DEFAULT_POLL_DELAY), MAX_POLL_DELAY)
