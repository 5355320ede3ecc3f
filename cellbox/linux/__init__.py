"""Thin, typed wrappers over the kernel facilities cellbox uses, one module per facility.

Every call is checked: a failing syscall raises ``OSError`` with the errno and the call named.
"""
