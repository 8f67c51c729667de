# Personalised accuracy vs fine-tuning steps, per model and algorithm.
set terminal pngcairo size 900,500 font ",10"
set output outfile
set title "Personalisation: mean of 4 sites vs fine-tuning steps"
set xlabel "fine-tuning steps (0 = federated model as is)"
set ylabel "accuracy"
set key outside right
set grid
set xrange [-5:105]
set xtics (0, 10, 100)
set yrange [0.45:0.85]
set arrow from graph 0, first 0.81 to graph 1, first 0.81 nohead dt 2 lc rgb "red"
set label "goal 0.81" at graph 0.02, first 0.815 tc rgb "red"
plot for [i=2:ncols+1] datafile using 1:i with linespoints lw 2 title columnheader(i)
