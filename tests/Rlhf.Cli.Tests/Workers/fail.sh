# Rank FAIL_RANK fails with FAIL_CODE after FAIL_DELAY seconds (long enough for the other ranks to start their children on
# a loaded machine); every other rank runs a child and waits (a long job).
echo "rank $RANK pid $$"
if [ "$RANK" = "$FAIL_RANK" ]; then sleep "$FAIL_DELAY"; echo "rank $RANK failing on purpose" >&2; exit "$FAIL_CODE"; fi
sleep 120 &
echo "rank $RANK child $!"
wait
