"""``python -m cellbox.boxinit``: build the box init now and print its path
(scripts/bootstrap.sh)."""

from cellbox.boxinit import binary

print(binary())
