# Every file in conf-examples/ passes `nginx -t` with Debian's nginx and the
# module, laid out the way `make run` lays out its prefix (modules/ and
# certs/ next to the configuration).  A broken example is a broken quickstart.
use strict;
use warnings;
use lib 't/lib';
use Test::More;
use File::Temp qw(tempdir);
use File::Copy qw(copy);
use File::Basename ();
use Cwd ();
use Test::Nginx::Socket ();

my $repo = $Test::Nginx::Socket::RepoRoot;
my $nginx = $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx';
my $build = "$repo/build";
# another nginx build (make test-asan) brings its own module: modules/ is
# the directory of the first TEST_NGINX_LOAD_MODULES entry
$build = File::Basename::dirname((split ' ', $ENV{TEST_NGINX_LOAD_MODULES})[0])
    if $ENV{TEST_NGINX_LOAD_MODULES};

ok(-f "$build/ngx_http_reverse_mcp_module.so", 'the module is built')
    or BAIL_OUT('run make build first');

my $certs = Test::Nginx::Socket::cert_dir();
my @confs = sort glob("$repo/conf-examples/*.conf");
cmp_ok(scalar @confs, '>=', 3, 'quickstart, tls and multi-agent examples');

for my $conf (@confs) {
    my $name = (split m{/}, $conf)[-1];
    my $prefix = tempdir(CLEANUP => 1);
    symlink(Cwd::abs_path($build), "$prefix/modules") or die $!;
    symlink($certs, "$prefix/certs") or die $!;
    mkdir "$prefix/$_" for qw(logs temp);
    copy($_, $prefix) for glob("$repo/conf-examples/*.token");
    copy($conf, "$prefix/$name") or die $!;

    my $out = `$nginx -p $prefix -c $name -t 2>&1`;
    my $rc = $?;        # the wait status: a signal (sanitizer abort) fails too
    is($rc, 0, "$name: nginx -t exits 0") or diag($out);
    like($out, qr/test is successful/, "$name: test is successful");
    unlike($out, qr/\[(warn|emerg|alert)\]/, "$name: no warnings");
}

done_testing();
