;; util.lisp is loaded as the program runs, from the directory beside it
(load "util.lisp")
(format t "~a~%" (twice (read)))
