"""HL7 v2 over MLLP with python-hl7's asyncio client (mllps:// is MLLP over
TLS 1.2+ with verified certificates; plain mllp:// only on loopback). The
connection goes through the egress policy (integrations.egress): the host is
resolved once, checked, and the checked address is dialled, with TLS naming
the host (SNI and certificate check).

I/O only: `exchange` sends one message and returns the facts (the answer's
text, or no answer and whether the message left). What they mean is read
without I/O in integrations.outcomes: mdm_ack_outcome (AA completes; AE/AR
fail with the receiver's reason, as a patient mismatch when it names the
patient, for the `receiver` patient check; no answer means resend with the
same MSH-10 and TXA-12, which the receiver deduplicates on) and pdq_check /
pdq_answer_check (the `pdq` patient check's RSP^K22). ack_names_patient and
pdq_answer_check are re-exported here for their callers."""

import asyncio
import ssl
from urllib.parse import urlparse

import hl7
from hl7.mllp import open_hl7_connection

from integrations.egress import stream_open
from integrations.outcomes import Reply, ack_names_patient, pdq_answer_check
from integrations.transports.base import unanswered

__all__ = ["ack_names_patient", "exchange", "pdq_answer_check"]


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


async def _exchange(host: str, port: int, message: str, timeout: float, tls: bool) -> Reply:
    try:
        reader, writer = await asyncio.wait_for(
            stream_open(open_hl7_connection, host, port, ssl=_tls_context() if tls else None, encoding="utf-8"),
            timeout,
        )
    except (OSError, EOFError) as exc:  # refused, not resolved, connect timeout: nothing left
        return Reply(status=None, bytes_sent=False, error=type(exc).__name__)
    try:
        writer.writemessage(hl7.parse(message))
        await writer.drain()
        ack = await asyncio.wait_for(reader.readmessage(), timeout)
        return Reply(status=None, body=str(ack).encode())
    except (OSError, EOFError) as exc:  # TimeoutError, a closed connection: no answer after sending
        return unanswered(exc)
    finally:
        writer.close()


def exchange(url: str, message: str, timeout: float) -> Reply:
    """One exchange with the receiver at mllp(s)://host:port: the answer's
    text as the body, or no answer (error). Raises EgressRefused when the
    policy refuses the host (a delivery that fails for good)."""
    parsed = urlparse(url)
    return asyncio.run(_exchange(parsed.hostname, parsed.port or 2575, message, timeout, tls=parsed.scheme == "mllps"))
