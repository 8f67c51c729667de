# Round time vs parameters P, per number of sites N: wire floor and metafl.
set terminal pngcairo size 800,500 font ",10"
set output outfile
set title "Round time (median): raw ZeroMQ CURVE floor vs metafl"
set xlabel "parameters P"
set ylabel "ms per round"
set logscale xy
set key outside right
set grid
plot for [i=2:ncols+1] datafile using 1:i with linespoints lw 2 title columnheader(i)
