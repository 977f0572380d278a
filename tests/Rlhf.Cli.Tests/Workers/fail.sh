# Rank FAIL_RANK fails with FAIL_CODE after FAIL_DELAY seconds; every other rank runs a child and waits (a long job).
echo "rank $RANK pid $$"
if [ "$RANK" = "$FAIL_RANK" ]; then sleep "$FAIL_DELAY"; echo "rank $RANK failing on purpose" >&2; exit "$FAIL_CODE"; fi
sleep 120 &
echo "rank $RANK child $!"
wait
