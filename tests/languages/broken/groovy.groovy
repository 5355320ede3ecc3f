def x = {
println "a"
