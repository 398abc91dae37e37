"""HL7 v2 over MLLP with python-hl7's asyncio client (mllps:// is MLLP over
TLS 1.2+ with verified certificates; plain mllp:// only on loopback). AA
completes; AE/AR fail with the receiver's reason; no answer means resend
with the same MSH-10 and TXA-12, which the receiver deduplicates on."""

import asyncio
import ssl
from urllib.parse import urlparse

import hl7
from hl7.mllp import open_hl7_connection

from integrations.transports.base import Outcome, failed, retry, sent

__all__ = ["Outcome", "mdm_send"]


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _exchange(host: str, port: int, message: str, timeout: float, tls: bool) -> str:
    extra = {"ssl": _tls_context()} if tls else {}
    reader, writer = await asyncio.wait_for(open_hl7_connection(host, port, encoding="utf-8", **extra), timeout)
    try:
        writer.writemessage(hl7.parse(message))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), timeout)
        return str(ack)
    finally:
        writer.close()


def mdm_send(*, url: str, message: str, control_id: str, timeout: float) -> Outcome:
    parsed = urlparse(url)
    try:
        ack_text = asyncio.run(
            _exchange(parsed.hostname, parsed.port or 2575, message, timeout, tls=parsed.scheme == "mllps")
        )
    except ConnectionRefusedError as exc:
        return retry(f"HL7 receiver unreachable: {exc}", alert="unreachable")
    except (OSError, EOFError) as exc:  # TimeoutError, a closed connection: no ACK
        return retry(f"No acknowledgement from the HL7 receiver ({type(exc).__name__}); resending with the same ids")
    try:
        ack = hl7.parse(ack_text)
        msa = ack.segment("MSA")
    except (KeyError, hl7.ParseException, IndexError):
        return retry("The HL7 acknowledgement could not be read; resending with the same ids")
    code = str(msa[1])
    if str(msa[2]) != control_id:
        return retry(f"The acknowledgement is for another message ({msa[2]}); resending")
    if code in ("AA", "CA"):
        return sent(control_id)
    text = str(msa[3]) if len(msa) > 3 else ""
    try:
        err = ack.segment("ERR")
        text = text or str(err[8] if len(err) > 8 else err)
    except KeyError:
        pass
    return failed(f"HL7 receiver answered {code}: {text or 'no reason given'}", permanent=True)
