print "a" +;
