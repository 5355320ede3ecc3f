(format t "~a~%" (* 3 (read)))
