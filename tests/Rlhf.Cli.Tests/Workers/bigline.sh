# Rank 0 writes BIG_BYTES 'x' without a newline, then a line; the others write a few short lines.
if [ "$RANK" = 0 ]; then head -c "$BIG_BYTES" /dev/zero | tr '\0' 'x'; printf '\nrank 0 done\n'
else for i in 1 2 3; do echo "rank $RANK line $i"; done; fi
