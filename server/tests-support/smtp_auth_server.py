"""An SMTP server for the email destination's tests: aiosmtpd's Mailbox handler (every message into a maildir)
behind AUTH, which aiosmtpd's command line cannot ask for. Mail is refused until the client signs in with the
given username and password; plain connections may sign in, as the tests use no TLS.

usage: python3 smtp_auth_server.py HOST PORT MAILDIR USERNAME PASSWORD
"""

import sys
import threading
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword


def main() -> None:
    host, port, maildir, username, password = sys.argv[1:]
    # AUTH without TLS is what the tests need; aiosmtpd warns about it on every connection.
    warnings.simplefilter("ignore")

    def authenticate(server, session, envelope, mechanism, auth_data):
        accepted = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == username.encode()
            and auth_data.password == password.encode()
        )
        # Not handled: aiosmtpd answers a refusal with its own 535 rather than nothing.
        return AuthResult(success=accepted, handled=False)

    controller = Controller(
        Mailbox(maildir),
        hostname=host,
        port=int(port),
        authenticator=authenticate,
        auth_required=True,
        auth_require_tls=False,
    )
    controller.start()
    # The test ends this process when it is done.
    threading.Event().wait()


if __name__ == "__main__":
    main()
