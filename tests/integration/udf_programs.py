"""UDF programs for the tests: a stream function written with kapa_core.udf.agent that
answers info and init, and does ``point_body`` with each point (``p``) it gets — the
misbehaving functions of the UDF tests differ only there."""

from __future__ import annotations

import textwrap

_STREAM_UDF = '''{imports}
from kapa_core.udf.agent import Agent, Handler, udf_pb2
class H(Handler):
    def info(self):
        r = udf_pb2.Response(); r.info.wants = r.info.provides = udf_pb2.STREAM; return r
    def init(self, req):
        r = udf_pb2.Response(); r.init.success = True; return r
    def point(self, p):
{body}
a = Agent(); a.handler = H(); a.start(); a.wait()
'''


def stream_udf(point_body: str, imports: str = "") -> str:
    """The program's source; ``a`` is its agent, for ``a.write_response``."""
    body = textwrap.indent(textwrap.dedent(point_body).strip(), " " * 8)
    return _STREAM_UDF.format(imports=imports, body=body)


#: writes bytes that are no message
GARBAGE = stream_udf('sys.stdout.buffer.write(b"\\x05\\xff\\xff\\xff\\xff\\xff"); '
                     "sys.stdout.flush()", "import sys")
#: stops answering anything, keepalives included
SILENT = stream_udf("time.sleep(3600)", "import time")
