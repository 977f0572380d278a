# Every rank starts a child (a grandchild of the launcher) and waits; on SIGTERM or SIGINT it says so and exits 0,
# unless IGNORE_TERM=1 (then only SIGKILL ends it).
if [ "$IGNORE_TERM" = 1 ]; then trap '' TERM INT; else
  trap 'echo "rank $RANK got TERM"; exit 0' TERM
  trap 'echo "rank $RANK got INT"; exit 0' INT
fi
sleep 120 &
echo "rank $RANK pid $$ child $!"
while :; do wait; done
