(println "a"
