# New-hospital accuracy vs the number of labelled cases k (10 steps).
# gnuplot -e "datafile='...'; outfile='...'; ncols=N" newsite.gp
set terminal pngcairo size 800,500 font ",10"
set output outfile
set title "New hospital: mean accuracy over held-out sites (10 adaptation steps)"
set xlabel "labelled cases k at the new hospital"
set ylabel "accuracy"
set key outside right
set grid
set xtics (5, 10, 20)
set yrange [0.5:0.85]
set arrow from graph 0, first 0.78 to graph 1, first 0.78 nohead dt 2 lc rgb "red"
set label "goal 0.78 (k=10)" at graph 0.02, first 0.785 tc rgb "red"
plot for [i=2:ncols+1] datafile using 1:i with linespoints lw 2 title columnheader(i)
