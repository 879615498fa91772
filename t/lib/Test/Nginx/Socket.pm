package Test::Nginx::Socket;

# Minimal re-implementation of openresty's Test::Nginx::Socket block format
# on top of Test::Base, for testing ngx_http_reverse_mcp_module with the
# distribution's nginx binary.  Usage and the list of sections: see the POD
# at the end of this file.
#
# NOTE: "use Test::Base -Base" runs Spiffy's source filter over this file:
# a column-0 "sub name {" gets "my $self = shift;" injected (methods), while
# "sub name () {" is left alone, minus the empty prototype.  Every plain
# function below is therefore written "sub name () {".

use Test::Base -Base;

our $VERSION = '0.01';

use Config ();
use Cwd ();
use Fcntl qw(:flock);
use File::Basename ();
use File::Path ();
use File::Spec ();
use IO::Socket::INET ();
use POSIX ();
use Time::HiRes ();
use Cpanel::JSON::XS ();
use Test::LongString ();
use Test::More import => [qw(note explain subtest done_testing BAIL_OUT)];
use Test::Nginx::WS ();
use Test::Nginx::ReverseMCP ();

# Compiles and runs a block's test_code.  Defined before any file-scoped
# lexical so that the code only sees the variables documented for it.
sub _eval_test_code () {
    my ($code, $line, $block, $port, $port2, $port3, $servroot, $html_dir,
        $cert_dir) = @_;
    return eval("package main;\n$line\n$code\n;1") ? undef
           : ($@ || "test_code failed\n");
}

our @EXPORT = qw(
    run_tests workers master_on master_off log_level no_shuffle repeat_each
    no_long_string no_root_location no_module env_to_nginx

    http_get http_request status_json error_log_since_start
    nginx_master_pid nginx_worker_pids nginx_reload wait_until
    free_port cert_dir client_cert expect_worker_kill timeout_scale

    note explain subtest done_testing BAIL_OUT

    $ServerAddr $ServerPort $ServerPort2 $ServerPort3 $ServRoot $HtmlDir
    $RepoRoot $CertDir $NginxBinary
);

our ($ServerAddr, $ServerPort, $ServerPort2, $ServerPort3, $ServRoot,
     $HtmlDir, $RepoRoot, $CertDir, $NginxBinary);

# global options (per-block sections of the same name override them)
my %Opt = (
    workers => 1, master => 0, log_level => 'info', repeat => 1,
    long_string => 1, root_location => 1, no_module => 0,
);
my @EnvToNginx;
my %UsedPorts;
my $HarnessPid = $$;
my $ServRootLock;
my $OwnServRoot;                # we picked a per-process servroot: remove it

# the running (or nginx -t'd) instance of the current block
my %Cur;

# error log lines that fail any block: crashed workers, and connections
# still open when a worker exits during a graceful shutdown (leaks)
my %ExpectedKills;              # pids a block kills on purpose
my $FatalLog = qr/exited on signal|open socket #\d+ left in connection
                  |\[alert\]\ \d+\#\d+:\ aborting/x;

# Sanitizer builds of nginx (make test-asan, test/sanitize/): ASan, UBSan
# and LSan write their reports to nginx's stderr, i.e. logs/stderr.log until
# nginx has opened its error log, and the error log afterwards (nginx
# dup2()s the error log onto fd 2).  A report in either fails the block.
my $SanitizerLog = qr/ERROR:\ (?:Address|Leak)Sanitizer|runtime\ error:/x;

# Valgrind mode (make test-valgrind): TEST_NGINX_USE_VALGRIND=1 runs nginx
# (and nginx -t of must_die blocks) under memcheck, one log per process in
# logs/valgrind.PID.log; an error in any of them fails the block.
# TEST_NGINX_VALGRIND_OPTS adds options (e.g. --leak-check=full).
my $UseValgrind = $ENV{TEST_NGINX_USE_VALGRIND};
my $ValgrindErr = qr/ERROR\ SUMMARY:\ [1-9]
    |^==\d+==\ (?:Invalid\ (?:read|write|free)|Mismatched\ free
                |Conditional\ jump|Use\ of\ uninitialised|Syscall\ param
                |Source\ and\ destination\ overlap|Jump\ to\ the\ invalid
                |\S+\ bytes\ in\ \S+\ blocks\ are\ definitely\ lost)/mx;

# Linux prctl(2) syscall numbers
my %PrctlNr = (x86_64 => 157, aarch64 => 167, i386 => 172, i686 => 172);


# ------------------------------------------------------------------------
# setup at load time: paths, ports, environment
# ------------------------------------------------------------------------

sub free_port () {
    while (1) {
        my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1',
                                      LocalPort => 0, Proto => 'tcp')
            or die "cannot bind a free port: $!\n";
        my $p = $s->sockport;
        next if $p == 8080 || $p == 9090 || $UsedPorts{$p};
        $UsedPorts{$p} = 1;
        return $p;
    }
}

sub _init () {
    $RepoRoot = Cwd::abs_path(File::Basename::dirname(__FILE__)
                              . '/../../../..');
    $NginxBinary = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
    $ServerAddr = '127.0.0.1';

    # slow builds: harness waits and client timeouts are multiplied by
    # TEST_NGINX_TIMEOUT_SCALE (see timeout_scale()); 10 under valgrind
    $ENV{TEST_NGINX_TIMEOUT_SCALE} ||= 10 if $UseValgrind;

    if ($ENV{TEST_NGINX_PORT}) {        # fixed port for debugging
        $UsedPorts{ $ServerPort = $ENV{TEST_NGINX_PORT} } = 1;
    } else {
        $ServerPort = free_port();
    }
    $ServerPort2 = free_port();
    $ServerPort3 = free_port();

    if ($ENV{TEST_NGINX_SERVROOT}) {
        $ServRoot = $ENV{TEST_NGINX_SERVROOT};
    } else {
        # t/servroot, unless another harness (prove -j) holds it
        $ServRoot = "$RepoRoot/t/servroot";
        open $ServRootLock, '>', "$ServRoot.lock"
            or die "cannot open $ServRoot.lock: $!\n";
        unless (flock $ServRootLock, LOCK_EX | LOCK_NB) {
            $ServRoot .= "-$$";
            $OwnServRoot = $ServRoot;
        }
    }
    $ServRoot = File::Spec->rel2abs($ServRoot);
    $HtmlDir = "$ServRoot/html";
    $CertDir = $ENV{TEST_NGINX_CERT_DIR} || "$RepoRoot/t/servroot-certs";

    %ENV = (%ENV,
        TEST_NGINX_SERVER_PORT  => $ServerPort,
        TEST_NGINX_SERVER_PORT2 => $ServerPort2,
        TEST_NGINX_SERVER_PORT3 => $ServerPort3,
        TEST_NGINX_SERVROOT     => $ServRoot,
        TEST_NGINX_HTML_DIR     => $HtmlDir,
        TEST_NGINX_REPO         => $RepoRoot,
        TEST_NGINX_CERT_DIR     => $CertDir,
        TEST_NGINX_BINARY       => $NginxBinary,
    );

    # stop nginx, then die of the signal as we would have without handler
    for my $sig (qw(INT TERM HUP PIPE)) {
        $SIG{$sig} = sub {
            _cleanup();
            $SIG{$sig} = 'DEFAULT';
            kill $sig, $$;
        };
    }
}

_init();

sub _cleanup () {
    return unless $HarnessPid && $$ == $HarnessPid;
    _stop_nginx() if $Cur{pid};
}

END {
    local $?;
    _cleanup();
    File::Path::remove_tree($OwnServRoot)
        if $OwnServRoot && $HarnessPid && $$ == $HarnessPid;
}


# ------------------------------------------------------------------------
# exported configuration functions
# ------------------------------------------------------------------------

sub workers ()        { $Opt{workers} = shift if @_; $Opt{workers} }
sub master_on ()      { $Opt{master} = 1 }
sub master_off ()     { $Opt{master} = 0 }
sub log_level ()      { $Opt{log_level} = shift if @_; $Opt{log_level} }
sub repeat_each ()    { $Opt{repeat} = shift if @_; $Opt{repeat} }
sub no_long_string () { $Opt{long_string} = 0 }
sub no_root_location () { $Opt{root_location} = 0 }
sub no_module ()      { $Opt{no_module} = 1 }
sub no_shuffle ()     { 1 }     # blocks always run in file order
sub env_to_nginx ()   { push @EnvToNginx, @_ }


# ------------------------------------------------------------------------
# Test::Base hooks
# ------------------------------------------------------------------------

# Like Test::Base's, but SKIP blocks are kept so run_tests can report them
# as TAP skips instead of silently dropping them.
sub _choose_blocks {
    my @blocks;
    for my $hunk (@_) {
        my $block = $self->_make_block($hunk);
        if (exists $block->{ONLY}) {
            diag "I found ONLY: maybe you're debugging?";
            return [$block];
        }
        push @blocks, $block;
        last if exists $block->{LAST};
    }
    return \@blocks;
}

package Test::Nginx::Socket::Filter;

use base 'Test::Base::Filter';

# "--- section eval": evaluated in package main; an error fails the block
# (Test::Base's own filter would silently use the error text as the value).
sub eval {
    $self->assert_scalar(@_);
    my $code = shift;
    my @r = CORE::eval("package main;\n#line 1 \"eval section\"\n$code");
    if ($@) {
        push @{ $self->current_block->{_eval_errors} }, $@;
        return '';
    }
    return @r;
}

package Test::Nginx::Socket;


# ------------------------------------------------------------------------
# small utilities
# ------------------------------------------------------------------------

# TEST_NGINX_TIMEOUT_SCALE (default 1): the factor for timing bounds
sub timeout_scale () { Test::Nginx::WS::timeout_scale() }

sub wait_until () {
    my ($cond, $timeout, $interval) = @_;
    my $deadline = Time::HiRes::time() + ($timeout // 5) * timeout_scale();
    while (1) {
        my $r = $cond->();
        return $r if $r;
        return 0 if Time::HiRes::time() >= $deadline;
        Time::HiRes::sleep($interval // 0.1);
    }
}

sub _slurp () {
    my ($file, $offset) = @_;
    open my $fh, '<:raw', $file or return '';
    seek $fh, $offset, 0 if $offset;
    local $/;
    return scalar(<$fh>) // '';
}

sub _spew () {
    my ($file, $data) = @_;
    File::Path::make_path(File::Basename::dirname($file));
    open my $fh, '>:raw', $file or die "cannot write $file: $!\n";
    print $fh $data;
    close $fh or die "cannot write $file: $!\n";
}

# Runs a command with stdout+stderr captured; returns ($wait_status,
# $output).  The child is killed after $timeout seconds.
sub _run_cmd () {
    my ($argv, $timeout) = @_;
    pipe(my $r, my $w) or die "pipe: $!\n";
    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        close $r;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>&', $w;
        open STDERR, '>&', $w;
        no warnings q(exec);
        exec { $argv->[0] } @$argv;
        print STDERR "exec $argv->[0]: $!\n";
        POSIX::_exit(127);
    }
    close $w;
    my $out = '';
    my $deadline = Time::HiRes::time() + ($timeout // 30);
    while (1) {
        my $left = $deadline - Time::HiRes::time();
        if ($left <= 0) {
            kill 'KILL', $pid;
            $out .= "\n[killed after ${timeout}s]\n";
            last;
        }
        my $vec = '';
        vec($vec, fileno($r), 1) = 1;
        next unless select(my $rv = $vec, undef, undef, $left) > 0;
        sysread($r, my $buf, 65536) or last;
        $out .= $buf;
    }
    close $r;
    waitpid $pid, 0;
    return ($?, $out);
}

# Self-signed CA + server certificate for CN=localhost (SAN IP:127.0.0.1,
# DNS:localhost), generated once into $CertDir; returns the directory.
# A block that SIGKILLs a worker on purpose: the master's "PID exited on
# signal 9" line for that pid does not fail the block (any other does).
sub expect_worker_kill ($) {
    $ExpectedKills{$_[0]} = 1;
}

sub cert_dir () {
    return $CertDir if 3 == grep { -s "$CertDir/$_" }
                                 qw(ca.crt server.crt server.key);

    my $tmp = "$CertDir.tmp.$$";
    File::Path::remove_tree($tmp);
    File::Path::make_path($tmp);
    _spew("$tmp/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        . "basicConstraints=CA:FALSE\n"
        . "keyUsage=digitalSignature,keyEncipherment\n"
        . "extendedKeyUsage=serverAuth\n");
    my @cmds = (
        [qw(openssl req -x509 -newkey rsa:2048 -nodes -days 3650),
         -keyout => "$tmp/ca.key", -out => "$tmp/ca.crt",
         -subj => '/CN=Test::Nginx CA',
         -addext => 'basicConstraints=critical,CA:TRUE',
         -addext => 'keyUsage=critical,keyCertSign,cRLSign'],
        [qw(openssl req -newkey rsa:2048 -nodes),
         -keyout => "$tmp/server.key", -out => "$tmp/server.csr",
         -subj => '/CN=localhost'],
        [qw(openssl x509 -req -days 3650 -set_serial), time(),
         -in => "$tmp/server.csr", -CA => "$tmp/ca.crt",
         -CAkey => "$tmp/ca.key", -out => "$tmp/server.crt",
         -extfile => "$tmp/ext.cnf"],
    );
    for my $cmd (@cmds) {
        my ($st, $out) = _run_cmd($cmd, 60);
        die "certificate generation failed: @$cmd\n$out\n" if $st;
    }
    # atomic publish: a concurrent harness may have won the race
    unless (rename $tmp, $CertDir) {
        File::Path::remove_tree($tmp);
        die "cannot create $CertDir: $!\n" unless -s "$CertDir/server.key";
    }
    return $CertDir;
}

# A client key + certificate into $dir/$name.{key,crt}, signed by the CA
# of cert_dir() (or $o{ca_crt}/$o{ca_key}); %o: cn ($name), san
# ("DNS:s1,DNS:s2"), self_signed (no CA: a certificate nginx does not
# trust).  Returns (crt, key); dies when openssl fails.
sub client_cert () {
    my ($dir, $name, %o) = @_;
    my $ca = cert_dir();
    File::Path::make_path($dir);
    my $subj = '/CN=' . ($o{cn} // $name);
    my ($crt, $key) = ("$dir/$name.crt", "$dir/$name.key");
    my @cmds;
    if ($o{self_signed}) {
        @cmds = ([qw(openssl req -x509 -newkey rsa:2048 -nodes -days 2),
                  -subj => $subj, -keyout => $key, -out => $crt,
                  $o{san} ? (-addext => "subjectAltName=$o{san}") : ()]);
    } else {
        _spew("$dir/$name.ext", "basicConstraints=CA:FALSE\n"
            . "keyUsage=digitalSignature,keyEncipherment\n"
            . "extendedKeyUsage=clientAuth\n"
            . ($o{san} ? "subjectAltName=$o{san}\n" : ''));
        @cmds = ([qw(openssl req -newkey rsa:2048 -nodes), -subj => $subj,
                  -keyout => $key, -out => "$dir/$name.csr"],
                 [qw(openssl x509 -req -days 2 -set_serial),
                  int(Time::HiRes::time() * 1000) . $$,
                  -in => "$dir/$name.csr",
                  -CA => $o{ca_crt} // "$ca/ca.crt",
                  -CAkey => $o{ca_key} // "$ca/ca.key",
                  -extfile => "$dir/$name.ext", -out => $crt]);
    }
    for my $cmd (@cmds) {
        my ($st, $out) = _run_cmd($cmd, 60);
        die "client certificate generation failed: @$cmd\n$out\n" if $st;
    }
    return ($crt, $key);
}

my %Expand;

sub _expand () {
    my ($v) = @_;
    return [ map { _expand($_) } @$v ] if ref $v eq 'ARRAY';
    return $v if !defined $v || ref $v;
    %Expand = (
        SERVER_PORT => $ServerPort, SERVER_PORT2 => $ServerPort2,
        SERVER_PORT3 => $ServerPort3, SERVROOT => $ServRoot,
        HTML_DIR => $HtmlDir, REPO => $RepoRoot, CERT_DIR => $CertDir,
    ) unless %Expand;
    $v =~ s{\$(?:\{TEST_NGINX_(\w+)\}|TEST_NGINX_(\w+))}{
        my $n = $1 // $2;
        $Expand{$n} // $ENV{"TEST_NGINX_$n"} // $&
    }ge;
    return $v;
}

# a block's section values (expanded); scalar context: the first value
sub _sec () {
    my ($block, $name) = @_;
    return unless exists $block->{$name};
    my @v = map { _expand($_) } $block->$name;
    return wantarray ? @v : $v[0];
}

sub _is_eval () {
    my ($block, $name) = @_;
    return ($block->_section_map->{$name}{filters} // '') =~ /\beval\b/;
}

# "error_log"-like sections: a list of strings / regexps
sub _patterns () {
    my ($block, $name) = @_;
    my @v = map { ref $_ eq 'ARRAY' ? @$_ : $_ } _sec($block, $name);
    @v = map { split /\n/ } @v unless _is_eval($block, $name);
    return grep { ref $_ || (defined $_ && /\S/) } @v;
}

sub _match () {
    my ($pat, $text) = @_;
    return ref $pat eq 'Regexp' ? $text =~ $pat : index($text, $pat) >= 0;
}

sub _header_pairs () {
    my ($text) = @_;
    return () unless defined $text;
    return map { /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/ ? ($1, $2) : () }
           split /\n/, $text;
}


# ------------------------------------------------------------------------
# nginx process control
# ------------------------------------------------------------------------

sub _modules () {
    my $mods = $ENV{TEST_NGINX_LOAD_MODULES}
               // "$RepoRoot/build/ngx_http_reverse_mcp_module.so";
    return split ' ', $mods;
}

sub _block_opts () {
    my ($block) = @_;
    my %o = %Opt;
    $o{workers} = _sec($block, 'workers') if exists $block->{workers};
    $o{master} = 1 if exists $block->{master_on};
    $o{master} = 0 if exists $block->{master_off};
    $o{log_level} = _sec($block, 'log_level') if exists $block->{log_level};
    $o{no_module} = 1 if exists $block->{no_module};
    $o{root_location} = 0 if exists $block->{no_root_location};
    return \%o;
}

sub _nginx_conf () {
    my ($block, $o) = @_;
    my $sr = $ServRoot;
    my $config = _sec($block, 'config') // '';
    my $conf = '';

    unless ($o->{no_module}) {
        $conf .= "load_module $_;\n" for _modules();
    }
    $conf .= (_sec($block, 'main_config') // '') . "\n";
    $conf .= "user root;\n" if $> == 0;
    $conf .= "worker_processes $o->{workers};\n"
           . 'master_process ' . ($o->{master} ? 'on' : 'off') . ";\n"
           . "daemon off;\n"
           . "error_log $sr/logs/error.log $o->{log_level};\n"
           . "pid $sr/logs/nginx.pid;\n"
           . "lock_file $sr/logs/nginx.lock;\n";
    $conf .= "env $_;\n" for @EnvToNginx;

    my $http_config = _sec($block, 'http_config') // '';
    my $post = _sec($block, 'post_main_config') // '';
    my $root = $o->{root_location}
               && $config !~ /\blocation\s+(?:\^~\s*)?\/\s*\{/
        ? "        location / {\n            root $sr/html;\n        }\n"
        : '';

    my $wc = _sec($block, 'worker_connections') // 1024;
    $wc =~ s/\s+//g;

    return $conf . <<"_EOC_";
events {
    worker_connections $wc;
    accept_mutex off;
}

http {
    access_log $sr/logs/access.log;
    client_body_temp_path $sr/client_body_temp;
    proxy_temp_path $sr/proxy_temp;
    fastcgi_temp_path $sr/fastcgi_temp;
    uwsgi_temp_path $sr/uwsgi_temp;
    scgi_temp_path $sr/scgi_temp;
    default_type text/plain;

$http_config

    server {
        listen $ServerAddr:$ServerPort;
        server_name localhost;

$config

$root    }
}

$post
_EOC_
}

sub _prepare_servroot () {
    my ($block) = @_;
    File::Path::remove_tree($ServRoot);
    File::Path::make_path(map { "$ServRoot/$_" } qw(conf logs html
        client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp));

    for my $uf (_sec($block, 'user_files')) {
        my @files;
        if (ref $uf eq 'ARRAY') {           # eval: [[path, content], ...]
            @files = map { [ @$_[0, 1] ] } @$uf;
        } else {
            for (split /^(?=>>> )/m, $uf) {
                next unless s/^>>> +(\S+)[^\n]*\n?//;
                push @files, [ $1, $_ ];
            }
        }
        _spew("$HtmlDir/$_->[0]", $_->[1]) for @files;
    }
}

# listening sockets: port => [inode, ...]
sub _listen_inodes () {
    my %l;
    for my $f ('/proc/net/tcp', '/proc/net/tcp6') {
        open my $fh, '<', $f or next;
        while (<$fh>) {
            my @c = split ' ';
            next unless @c > 9 && $c[3] eq '0A' && $c[1] =~ /:([0-9A-F]+)$/;
            push @{ $l{ hex $1 } }, $c[9];
        }
    }
    return \%l;
}

sub _pid_inodes () {
    my ($pid) = @_;
    my %i;
    opendir my $d, "/proc/$pid/fd" or return \%i;
    for (readdir $d) {
        my $t = readlink "/proc/$pid/fd/$_" // next;
        $i{$1} = 1 if $t =~ /^socket:\[(\d+)\]/;
    }
    return \%i;
}

sub _listen_ports () {
    my ($conf) = @_;
    my %p;
    while ($conf =~ /^\s*listen\s+([^\s;]+)/mg) {
        my $a = $1;
        next if $a =~ /^unix:/;
        $p{$1} = 1 if $a =~ /(?:^|:)(\d+)$/;
    }
    return sort keys %p;
}

# children of the master; active workers only unless all => 1
sub nginx_worker_pids () {
    my (%opt) = @_;
    my @pids;
    my $master = $opt{master} // $Cur{pid} or return @pids;
    opendir my $d, '/proc' or return @pids;
    for my $pid (grep { /^\d+$/ } readdir $d) {
        my $stat = _slurp("/proc/$pid/stat");
        next unless $stat =~ /\)\s+\S+\s+(\d+)/ && $1 == $master;
        my $cmd = _slurp("/proc/$pid/cmdline");
        if ($UseValgrind) {
            # nginx's process titles do not reach /proc under valgrind: a
            # worker that still holds a listening socket is an active one
            # (a worker shutting down closes them first)
            next unless $opt{all} || _holds_listen_socket($pid);
        } else {
            next unless $opt{all}
                || ($cmd =~ /worker process/ && $cmd !~ /shutting down/);
        }
        push @pids, $pid;
    }
    @pids = sort { $a <=> $b } @pids;
    return @pids;       # a count in scalar context
}

sub _holds_listen_socket () {
    my ($pid) = @_;
    my $mine = _pid_inodes($pid);
    return grep { $mine->{$_} } map { @$_ } values %{ _listen_inodes() };
}

sub nginx_master_pid () { $Cur{pid} }

# The nginx command line; under valgrind (TEST_NGINX_USE_VALGRIND) nginx
# runs under memcheck with one log per process (workers are forked, so
# they are traced anyway; --trace-children follows a binary upgrade).
sub _nginx_cmd () {
    my @cmd = ($NginxBinary, '-p', "$ServRoot/", '-c', 'conf/nginx.conf', @_);
    return @cmd unless $UseValgrind;
    my $supp = "$RepoRoot/test/sanitize/valgrind.supp";
    return ('valgrind', '--tool=memcheck', '--error-exitcode=42',
            '--leak-check=no', '--trace-children=yes', '--num-callers=30',
            "--log-file=$ServRoot/logs/valgrind.%p.log",
            (-f $supp ? "--suppressions=$supp" : ()),
            split(' ', $ENV{TEST_NGINX_VALGRIND_OPTS} // ''), @cmd);
}

# Sanitizer and valgrind reports of this block's nginx: a list of
# problems, each with the start of the report (error_log_since_start()
# is the nginx -t output in must_die blocks).
sub _memory_reports () {
    my @problems;
    for (['logs/error.log', error_log_since_start()],
         ['logs/stderr.log', _slurp("$ServRoot/logs/stderr.log")]) {
        my ($what, $text) = @$_;
        next unless $text =~ $SanitizerLog;
        my $at = rindex($text, "\n", $-[0]) + 1;
        # nginx frees nothing when it refuses a configuration (main()
        # returns with its init cycle's pool): in must_die blocks a leak
        # report counts only when one of its stacks is in the module
        next if defined $Cur{nginx_t_output}
                && $text !~ /ERROR:\ AddressSanitizer|runtime\ error:/
                && substr($text, $at) !~ /\bin\ ngx_http_reverse_mcp_\w+\ 
                                          |reverse_mcp_module\.so\+/x;
        # the report from its first line on (stack included), capped
        my @l = split /\n/, substr($text, $at);
        splice @l, 60 if @l > 60;
        push @problems, "sanitizer report in $what:\n" . join "\n", @l;
    }
    for my $f (sort glob "$ServRoot/logs/valgrind.*.log") {
        my $text = _slurp($f);
        next unless $text =~ $ValgrindErr;
        my @l = split /\n/, $text;
        splice @l, 150 if @l > 150;
        push @problems, "valgrind errors in logs/"
            . File::Basename::basename($f) . ":\n" . join "\n", @l;
    }
    return @problems;
}

sub error_log_since_start () {
    return $Cur{nginx_t_output} if defined $Cur{nginx_t_output};
    return _slurp("$ServRoot/logs/error.log", $Cur{log_offset} // 0);
}

sub _nginx_logs () {
    return "--- logs/stderr.log:\n" . _slurp("$ServRoot/logs/stderr.log")
         . "--- logs/error.log:\n" . error_log_since_start();
}

# Starts nginx for the block; returns an error message or undef.
sub _start_nginx () {
    my ($o, $conf) = @_;
    my $log = "$ServRoot/logs/error.log";
    %Cur = (log_offset => -s $log // 0, workers => $o->{workers},
            master => $o->{master});

    my $pid = fork // die "fork: $!\n";
    if (!$pid) {
        POSIX::setpgid(0, 0);
        # prctl(PR_SET_PDEATHSIG = 1, SIGTERM): nginx stops even if we
        # are SIGKILLed
        my $nr = $PrctlNr{ (split /-/, $Config::Config{archname})[0] };
        syscall($nr, 1, POSIX::SIGTERM()) if $nr;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', "$ServRoot/logs/stderr.log";
        open STDERR, '>&', \*STDOUT;
        no warnings q(exec);
        my @cmd = _nginx_cmd();
        exec { $cmd[0] } @cmd;
        print STDERR "exec $cmd[0]: $!\n";
        POSIX::_exit(127);
    }
    POSIX::setpgid($pid, $pid);
    $Cur{pid} = $pid;

    my @ports = _listen_ports($conf);
    my $startup = 5 * timeout_scale();
    my $deadline = Time::HiRes::time() + $startup;
    while (1) {
        if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
            my $st = $?;
            delete $Cur{pid};
            return "nginx exited during startup (wait status $st)";
        }
        my $ready = 1;
        my $listen = _listen_inodes();
        my $mine = _pid_inodes($pid);
        for my $p (@ports) {
            $ready = 0 unless grep { $mine->{$_} } @{ $listen->{$p} || [] };
        }
        $ready = 0 if $ready && $o->{master}
                      && nginx_worker_pids() < $o->{workers};
        return undef if $ready;
        if (Time::HiRes::time() >= $deadline) {
            return "nginx is not listening on port(s) @ports"
                   . ($o->{master} ? " with $o->{workers} worker(s)" : '')
                   . " after $startup s";
        }
        Time::HiRes::sleep(0.02);
    }
}

sub _kill_wait () {
    my ($pid, $sig, $timeout) = @_;
    kill $sig, $pid;
    my $deadline = Time::HiRes::time() + $timeout;
    while (Time::HiRes::time() < $deadline) {
        my $r = waitpid($pid, POSIX::WNOHANG());
        return $? if $r == $pid;
        return -1 if $r < 0;
        Time::HiRes::sleep(0.02);
    }
    return undef;
}

# Stops nginx (QUIT, then TERM, then KILL) and makes sure nothing of its
# process group is left.  Returns a list of problems found.
sub _stop_nginx () {
    my $pid = delete $Cur{pid} or return ();
    my @problems;

    if (waitpid($pid, POSIX::WNOHANG()) == $pid) {
        # exit status 0: test_code stopped it (e.g. kill QUIT => master)
        push @problems, "nginx exited before the end of the test "
            . (POSIX::WIFSIGNALED($?) ? 'on signal ' . POSIX::WTERMSIG($?)
                                      : 'with status ' . ($? >> 8))
            if $?;
    } else {
        my $sc = timeout_scale();
        my $st = _kill_wait($pid, 'QUIT', 5 * $sc);
        unless (defined $st) {
            diag "nginx did not exit within " . 5 * $sc
                 . " s of SIGQUIT; sending SIGTERM";
            $st = _kill_wait($pid, 'TERM', 3 * $sc)
                  // _kill_wait($pid, 'KILL', 3);
        }
        push @problems, 'nginx master terminated on signal '
                        . POSIX::WTERMSIG($st)
            if defined $st && $st > 0 && POSIX::WIFSIGNALED($st)
               && POSIX::WTERMSIG($st) != POSIX::SIGKILL();
    }

    # orphaned workers keep the process group alive
    if (kill 0, -$pid) {
        kill 'KILL', -$pid;
        wait_until(sub { !kill 0, -$pid }, 2, 0.02);
    }
    return @problems;
}

# HUP the master and wait for a complete new set of workers
sub nginx_reload () {
    my (%opt) = @_;
    my $master = $Cur{pid} or return 0;
    unless ($Cur{master}) {
        kill 'HUP', $master;
        Time::HiRes::sleep(0.5 * timeout_scale());
        return kill 0, $master;
    }
    my %old = map { $_ => 1 } nginx_worker_pids();
    kill 'HUP', $master;
    return wait_until(sub {
        my @new = nginx_worker_pids();
        @new >= $Cur{workers} && !grep { $old{$_} } @new;
    }, $opt{timeout} // 5, 0.05) ? 1 : 0;
}


# ------------------------------------------------------------------------
# HTTP helpers
# ------------------------------------------------------------------------

# http_request($method, $path, $body, \%headers | \@pairs, %opt)
# %opt: port, host, timeout, ssl, ssl_ca, ssl_verify, http_version
sub http_request () {
    my ($method, $path, $body, $headers, %opt) = @_;
    my @h = Test::Nginx::WS::flatten_headers($headers);
    my %have;
    for (my $i = 0; $i < @h; $i += 2) {
        $have{ lc $h[$i] } = 1;
    }
    unshift @h, Host => 'localhost' unless $have{host};
    push @h, Connection => 'close' unless $have{connection};
    push @h, 'Content-Length' => length $body
        if defined $body && !$have{'content-length'}
           && !$have{'transfer-encoding'};

    return Test::Nginx::WS->http_exchange(
        %opt,
        port => $opt{port} // $ServerPort,
        method => $method,
        request => Test::Nginx::WS::format_request(
            $method, $path, \@h, $body, $opt{http_version}),
    );
}

sub http_get () {
    my ($path, %opt) = @_;
    return http_request('GET', $path, undef, delete $opt{headers}, %opt);
}

sub status_json () {
    my ($path, %opt) = @_;
    my $r = http_get($path // '/status', %opt);
    die "GET " . ($path // '/status') . ": status $r->{status}"
        . ($r->{error} ? " ($r->{error})" : '') . "\n$r->{body}\n"
        unless $r->{status} == 200;
    my $v = eval { Cpanel::JSON::XS->new->utf8->decode($r->{body}) };
    die "invalid JSON from " . ($path // '/status') . ": $@$r->{body}\n"
        if $@;
    return $v;
}


# ------------------------------------------------------------------------
# running blocks
# ------------------------------------------------------------------------

sub run_tests () {
    for my $block (blocks()) {
        if (exists $block->{SKIP}) {
            my $why = _sec($block, 'SKIP');
            Test::Builder->new->skip($block->name
                . ($why ? ": $why" : ': SKIP section'));
            next;
        }
        for my $i (1 .. $Opt{repeat}) {
            my $name = $block->name . ($Opt{repeat} > 1 ? " (repeat $i)" : '');
            next if eval { _run_block($block, $name); 1 };
            fail("$name - harness error");
            diag($@);
            _stop_nginx();
        }
    }
    # Test::Base's END block runs run_compare() unless plan() was called;
    # calling plan() without arguments only sets that flag.
    Test::Builder->new->plan();
    done_testing();
}

sub _run_block () {
    my ($block, $name) = @_;

    if (my $errs = $block->{_eval_errors}) {
        fail("$name - eval section failed");
        diag($_) for @$errs;
        return;
    }

    my $o = _block_opts($block);
    cert_dir() if grep { defined && /CERT_DIR|CertDir/ }
                  values %{ $block->original_values };
    _prepare_servroot($block);
    my $conf = _nginx_conf($block, $o);
    _spew("$ServRoot/conf/nginx.conf", $conf);

    if (exists $block->{must_die}) {
        _run_must_die($block, $name);
        %Cur = ();
        return;
    }

    if (my $err = _start_nginx($o, $conf)) {
        fail("$name - nginx started");
        diag("$err\n" . _nginx_logs());
        _stop_nginx();
        return;
    }

    my $checks = 0;
    $checks += _run_requests($block, $name);
    $checks += _run_test_code($block, $name);
    if (my $wait = _sec($block, 'wait')) {
        Time::HiRes::sleep($wait);
    }
    $checks += _check_logs($block, $name, 1);

    my @problems = _stop_nginx();
    my $log = _slurp("$ServRoot/logs/error.log", $Cur{log_offset});
    while ($log =~ /^(.*$FatalLog.*)$/mg) {
        my $line = $1;
        next if $line =~ / (\d+) exited on signal 9\b/
                && $ExpectedKills{$1};
        push @problems, "error log: $line";
    }
    push @problems, _memory_reports();
    %ExpectedKills = ();
    if (@problems) {
        fail("$name - nginx ran and exited cleanly");
        diag(join "\n", @problems);
    } elsif (!$checks) {
        pass("$name - nginx started and stopped");
    }
}

sub _run_must_die () {
    my ($block, $name) = @_;
    my ($st, $out) = _run_cmd([ _nginx_cmd('-t') ], 30 * timeout_scale());
    %Cur = (nginx_t_output => $out
            . _slurp("$ServRoot/logs/error.log"));
    ok($st != 0, "$name - nginx -t fails") or diag($out);
    if (my @reports = _memory_reports()) {     # nginx -t output included
        fail("$name - nginx -t without memory errors");
        diag(join "\n", @reports);
    }
    _run_test_code($block, $name);
    _check_logs($block, $name, 0);
}

# --- request / raw_request ----------------------------------------------

sub _run_requests () {
    my ($block, $name) = @_;
    my $raw = exists $block->{raw_request};
    my $reqs = _sec($block, $raw ? 'raw_request' : 'request');
    return 0 unless defined $reqs;
    my @reqs = ref $reqs eq 'ARRAY' ? @$reqs : ($reqs);

    my $timeout = _sec($block, 'timeout') || 5;
    my $more = _sec($block, 'more_headers');

    for my $i (0 .. $#reqs) {
        my $tag = @reqs > 1 ? "$name - req $i" : $name;
        my $res;
        if ($raw) {
            my ($method) = $reqs[$i] =~ /^\s*(\S+)/;
            $res = Test::Nginx::WS->http_exchange(
                port => $ServerPort, request => $reqs[$i],
                method => $method, timeout => $timeout);
        } else {
            my $req = $reqs[$i];
            my ($line, $body) = split /\n/, $req, 2;
            chomp $body if defined $body && !_is_eval($block, 'request');
            my ($method, $uri, $proto) = split ' ', $line;
            my $h = ref $more eq 'ARRAY' ? $more->[$i] : $more;
            $res = http_request($method, $uri,
                defined $body && length $body ? $body : undef,
                [ _header_pairs($h) ], timeout => $timeout,
                http_version => ($proto // '') =~ m{^HTTP/(\d\.\d)$}
                                ? $1 : '1.1');
        }
        fail("$tag - request failed: $res->{error}") if $res->{error};
        _check_response($block, $tag, $res, $i);
    }
    return 1;
}

# per-request expectation: arrays are indexed by request number
sub _expect () {
    my ($block, $sec, $i) = @_;
    my $v = _sec($block, $sec);
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub _check_response () {
    my ($block, $name, $res, $i) = @_;

    my $code = _expect($block, 'error_code', $i) // 200;
    is($res->{status}, $code, "$name - status code ok");

    if (exists $block->{response_body}) {
        my $exp = _expect($block, 'response_body', $i) // '';
        if ($Opt{long_string}) {
            Test::LongString::is_string($res->{body}, $exp,
                                        "$name - response_body - ok");
        } else {
            is($res->{body}, $exp, "$name - response_body - ok");
        }
    }
    if (defined(my $re = _expect($block, 'response_body_like', $i))) {
        $re = qr/$re/s unless ref $re eq 'Regexp';
        like($res->{body}, $re, "$name - response_body_like - ok");
    }
    if (defined(my $re = _expect($block, 'response_body_unlike', $i))) {
        $re = qr/$re/s unless ref $re eq 'Regexp';
        unlike($res->{body}, $re, "$name - response_body_unlike - ok");
    }

    my $h = $res->{headers};
    for (split /\n/, _expect($block, 'response_headers', $i) // '') {
        if (/^\s*!\s*(\S+)\s*$/) {
            ok(!exists $h->{ lc $1 }, "$name - header $1 absent")
                or diag("$1: $h->{lc $1}");
        } elsif (/^\s*([^:\s]+)\s*:\s*(.*?)\s*$/) {
            is($h->{ lc $1 }, $2, "$name - header $1 ok");
        }
    }
    for (split /\n/, _expect($block, 'response_headers_like', $i) // '') {
        next unless /^\s*([^:\s]+)\s*:\s*(.*?)\s*$/;
        like($h->{ lc $1 } // '', qr/$2/, "$name - header $1 like ok");
    }
}

# --- test_code ------------------------------------------------------------

sub _section_line () {
    my ($block, $sec) = @_;
    open my $fh, '<', $0 or return 1;
    my $in = 0;
    while (<$fh>) {
        $in = 1 if /^===\s*\Q${\ $block->name }\E\s*$/;
        return $. + 1 if $in && /^---\s+\Q$sec\E\b/;
    }
    return 1;
}

sub _run_test_code () {
    my ($block, $name) = @_;
    my $code = _sec($block, 'test_code');
    return 0 unless defined $code;

    my $timeout = (_sec($block, 'test_code_timeout') || 60) * timeout_scale();
    my $line = sprintf '#line %d "%s"', _section_line($block, 'test_code'),
                                        $0;
    my $err;
    {
        local $SIG{ALRM} = sub { die "test_code timed out after ${timeout}s\n" };
        alarm $timeout;
        $err = _eval_test_code($code, $line, $block, $ServerPort,
                   $ServerPort2, $ServerPort3, $ServRoot, $HtmlDir, $CertDir);
        alarm 0;
    }
    if (defined $err) {
        fail("$name - test_code died");
        diag($err);
    }
    return 1;
}

# --- error_log / no_error_log ---------------------------------------------

sub _check_logs () {
    my ($block, $name, $poll) = @_;
    my $n = 0;
    for my $pat (_patterns($block, 'error_log')) {
        $n++;
        my $found = wait_until(sub { _match($pat, error_log_since_start()) },
                               $poll ? 1 : 0, 0.05);
        ok($found, "$name - error_log: $pat")
            or diag("log:\n" . error_log_since_start());
    }
    my $log = error_log_since_start();
    for my $pat (_patterns($block, 'no_error_log')) {
        $n++;
        ok(!_match($pat, $log), "$name - no_error_log: $pat")
            or diag(join "\n", grep { _match($pat, $_) } split /\n/, $log);
    }
    return $n;
}

1;

__END__

=head1 NAME

Test::Nginx::Socket - data-driven nginx tests (test-nginx block format)

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::Nginx::Socket;
    master_on(); workers(2);
    run_tests();
    __DATA__
    === TEST 1: status page
    --- http_config
    reverse_mcp_zone reverse_mcp:4m;
    --- config
    location = /status { reverse_mcp_status; }
    --- request
    GET /status
    --- error_code: 200
    --- response_body_like: "agents"

Each block gets a fresh server root ($ServRoot: t/servroot, or
t/servroot-PID when another harness holds it, or TEST_NGINX_SERVROOT), a
generated conf/nginx.conf, its own nginx (QUIT/TERM/KILL'ed afterwards),
then the checks.  Blocks run in file order; run_tests ends with
done_testing(), so do not plan or call done_testing yourself.

=head1 FUNCTIONS

Configuration (before run_tests): workers($n), master_on(), master_off(),
log_level($lvl) (default info), repeat_each($n), no_shuffle() (no-op),
no_long_string(), no_diff(), no_root_location(), no_module() (no
load_module line), env_to_nginx(@names).  Also exported: plan, blocks and
is ok like unlike isnt is_deeply cmp_ok pass fail diag note explain
subtest.

Helpers (test_code or plain perl): http_get($path, %opt) and
http_request($method, $path, $body, \%headers | \@pairs, %opt), %opt =
port, host, timeout, ssl, ssl_ca, ssl_verify, http_version, headers
(http_get only); both return { status (0 if no response), reason, headers
(lowercase keys), header_list, body (de-chunked), error, timed_out }.
status_json($path = '/status', %opt) dies unless 200 + JSON.
error_log_since_start() (nginx -t output for must_die blocks),
nginx_master_pid(), nginx_worker_pids(all => 0, master => PID) (active
workers of the harness's master or of another one),
nginx_reload(timeout => 5) (HUP; true once a full new set of workers runs),
wait_until($code, $timeout = 5, $interval = 0.1), free_port(), cert_dir(),
client_cert($dir, $name, cn => .., san => 'DNS:..', self_signed => 1)
(a client certificate signed by cert_dir()'s CA: (crt, key)),
expect_worker_kill($pid) (a block that SIGKILLs that worker on purpose: its
"exited on signal 9" log line does not fail the block), timeout_scale()
(TEST_NGINX_TIMEOUT_SCALE, default 1: multiply a test's own timing bounds
by it).

Variables: $ServerAddr $ServerPort $ServerPort2 $ServerPort3 $ServRoot
$HtmlDir $RepoRoot $CertDir $NginxBinary; in configs, requests and
test_code: $TEST_NGINX_SERVER_PORT{,2,3} $TEST_NGINX_SERVROOT
$TEST_NGINX_HTML_DIR $TEST_NGINX_REPO $TEST_NGINX_CERT_DIR, and any other
$TEST_NGINX_XXX from %ENV (all of the above are also set in %ENV).
$TEST_NGINX_CERT_DIR (t/servroot-certs) holds ca.crt, server.crt and
server.key (CN=localhost, SAN IP:127.0.0.1, DNS:localhost), generated on
first use.

Environment: TEST_NGINX_BINARY (/usr/sbin/nginx), TEST_NGINX_LOAD_MODULES
(space-separated .so paths; default build/ngx_http_reverse_mcp_module.so),
TEST_NGINX_SERVROOT, TEST_NGINX_CERT_DIR, TEST_NGINX_PORT (fixed port),
TEST_NGINX_TIMEOUT_SCALE (default 1, 10 under valgrind: multiplies the
harness's waits: start, stop, wait_until, test_code_timeout, and every
Test::Nginx::WS / ReverseMCP client timeout), TEST_NGINX_USE_VALGRIND (run
nginx under valgrind memcheck, logs in logs/valgrind.PID.log, suppressions
from test/sanitize/valgrind.supp if present), TEST_NGINX_VALGRIND_OPTS
(more valgrind options).  make test-asan and make test-valgrind set them
(test/sanitize/).

=head1 SECTIONS

main_config, http_config, config (inside the server block; a C<location />
is added unless it has one), post_main_config; request ("METHOD /uri
[HTTP/1.x]" then body lines), more_headers ("Name: value" lines),
raw_request; "request eval" etc. may give arrays (one request each, same
nginx), with error_code / response_body / response_body_like /
response_body_unlike / response_headers / response_headers_like / more_headers
arrays indexed alike (a scalar applies to every request).  error_code
defaults to 200.  response_headers: "Name: value" (exact) or "!Name"
(absent).  error_log / no_error_log: lines of literal strings, or eval'd
strings and qr//; only the log of this block's nginx; expected lines are
polled for up to 1 s.  timeout (per request, 5), wait (sleep before the log
checks), must_die (nginx -t must fail; error_log then matches its output),
user_files (">>> path" + content under html/, "../x" under the servroot),
test_code (perl in package main, with $port $port2 $port3 $servroot
$html_dir $cert_dir $block; a die fails the block), test_code_timeout (60),
worker_connections (1024),
ONLY, SKIP (reported as a TAP skip), LAST.  Per-block overrides: workers,
master_on, master_off, log_level, no_module, no_root_location.

Automatic checks: the block fails if nginx does not start (the logs are
shown), exits abnormally before the end, or its error log shows a crashed
worker or sockets left open at a graceful exit ("open socket ... left in
connection"), or when logs/stderr.log or the error log holds a sanitizer
report ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime
error:"; in must_die blocks a leak report only when a stack is in the
module), or a valgrind log shows errors.

=cut
