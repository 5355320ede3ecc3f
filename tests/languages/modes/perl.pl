my $mode = <STDIN>;
chomp $mode;
if ($mode eq "hello") { print "hello\n"; }
elsif ($mode eq "echo") { local $/; print <STDIN>; }
elsif ($mode eq "re") { die "boom\n"; }
elsif ($mode eq "cpu") { my $x = 0; $x++ while $x >= 0; }
elsif ($mode eq "sleep") { sleep 30; }
elsif ($mode eq "mle") { my @hold; push @hold, "x" x (16 << 20) while 1; }
elsif ($mode eq "ole") { my $s = "x" x 65536; print $s while 1; }
elsif ($mode eq "exit") { exit 3; }
