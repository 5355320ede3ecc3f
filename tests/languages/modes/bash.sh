read -r mode
case $mode in
hello) echo hello ;;
echo) while IFS= read -r line; do printf '%s\n' "$line"; done ;;
re) kill -SEGV $$ ;;
cpu) while :; do :; done ;;
sleep) sleep 30 ;;
mle) cat /dev/zero | tail -c 1000000000 ;;  # tail keeps the last 1 GB it read in memory
ole) printf -v s '%65536s' ''; while :; do printf '%s' "$s"; done ;;
exit) exit 3 ;;
esac
