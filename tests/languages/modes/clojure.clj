(let [mode (read-line)]
  (case mode
    "hello" (println "hello")
    "echo" (print (slurp *in*))
    "re" (throw (IllegalStateException. "boom"))
    "cpu" (loop [x 0] (when (>= x 0) (recur (inc x))))
    "sleep" (Thread/sleep 30000)
    "mle" (loop [hold []]
            (let [b (byte-array (bit-shift-left 16 20))]
              (java.util.Arrays/fill b (byte 1))
              (recur (conj hold b))))
    "ole" (let [s (apply str (repeat 65536 "x"))] (loop [] (print s) (recur)))
    "exit" (System/exit 3)
    nil)
  (flush))
