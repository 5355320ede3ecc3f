read -r mode
case $mode in
hello) echo hello ;;
echo) while IFS= read -r line; do printf '%s\n' "$line"; done ;;
re) kill -SEGV $$ ;;
cpu) while :; do :; done ;;
sleep) sleep 30 ;;
mle) dd if=/dev/zero of=/dev/null bs=1G count=1 2>/dev/null ;;  # a 1 GiB buffer, filled
ole) printf -v s '%65536s' ''; while :; do printf '%s' "$s"; done ;;
exit) exit 3 ;;
esac
