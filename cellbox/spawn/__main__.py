"""``python -m cellbox.spawn``: build the box's C init now and print its path
(scripts/bootstrap.sh)."""

from cellbox.spawn import init_binary

print(init_binary())
