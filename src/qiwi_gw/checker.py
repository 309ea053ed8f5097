"""Asks the merchant's backend whether an account exists (``QIWI_CHECK_URL``)."""

from __future__ import annotations

import logging

import aiohttp
from yarl import URL

from qiwi_gw.errors import BackendUnavailableError
from qiwi_gw.settings import mask_url

logger = logging.getLogger(__name__)


class AccountChecker:
    def __init__(self, session: aiohttp.ClientSession, url: str | None, timeout: float) -> None:
        self._session = session
        self._url = URL(url) if url else None
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def account_exists(self, account: str) -> bool:
        """200 means yes, any other status no; raise ``BackendUnavailableError`` on no answer.

        Redirects are not followed: a 3xx is "another status", as the contract says.
        """
        if self._url is None:
            return True
        url = self._url.extend_query(account=account)
        try:
            async with self._session.get(
                url, timeout=self._timeout, allow_redirects=False
            ) as response:
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            logger.warning(
                "check URL %s unreachable: %s", mask_url(str(self._url)), type(exc).__name__
            )
            raise BackendUnavailableError(str(exc)) from None
        logger.debug("check URL answered %d", status)
        return status == 200
