"""What the tests share: boxes and the command line (``boxes``), hostile programs run with
proof that the box ran them (``proof``), the attack suite's canaries and listeners
(``hostile``), and the fixtures that tests/conftest.py and tests/security/conftest.py
register (``fixtures``). Test files import from here, never from a conftest or another test
file."""
