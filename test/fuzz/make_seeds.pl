#!/usr/bin/perl

# Regenerate the seed corpus of test/fuzz/ws_codec_fuzz.c:
#
#     perl test/fuzz/make_seeds.pl [dir]     (default: corpus/ws_codec
#                                             next to this script)
#
# Each seed is a raw WebSocket byte stream.  Client-to-server seeds are
# masked (they exercise server_side = 1), server-to-client seeds are not.
# The fuzz target runs every input in both modes with max_message = 4096.

use strict;
use warnings;

use File::Basename qw(dirname);
use File::Path qw(make_path);

my $dir = shift @ARGV // dirname(__FILE__) . '/corpus/ws_codec';
my $key = "\x37\xfa\x21\x3d";

# frame(fin, opcode, payload, mask [, claimed length [, length encoding]])

sub frame {
    my ($fin, $op, $payload, $mask, $len, $enc) = @_;

    $len //= length $payload;
    $enc //= $len < 126 ? 7 : $len <= 0xffff ? 16 : 64;

    my $m = defined $mask ? 0x80 : 0;
    my $f = pack 'C', ($fin ? 0x80 : 0) | $op;

    if ($enc == 7) {
        $f .= pack 'C', $m | $len;
    } elsif ($enc == 16) {
        $f .= pack 'Cn', $m | 126, $len;
    } else {
        $f .= pack 'CQ>', $m | 127, $len;
    }

    if (defined $mask) {
        my $k = substr($mask x (int(length($payload) / 4) + 1), 0,
                       length $payload);
        $f .= $mask . ($payload ^ $k);
    } else {
        $f .= $payload;
    }

    return $f;
}

my %seeds = (

    # RFC 6455 5.7 single-frame masked "Hello"
    'text_masked' => frame(1, 0x1, 'Hello', $key),

    # unmasked (server to client) text and binary
    'text_unmasked' => frame(1, 0x1, 'Hello', undef)
                       . frame(1, 0x2, "\x00\xff\x80", undef),

    # fragmented text, a ping in between, a 2-byte UTF-8 split
    'fragmented_ping' => frame(0, 0x1, "fr\xc3", $key)
                         . frame(1, 0x9, 'ping', $key)
                         . frame(0, 0x0, '', $key)
                         . frame(1, 0x0, "\xa9g", $key),

    # ping and pong, empty and full size
    'ping_pong' => frame(1, 0x9, '', $key)
                   . frame(1, 0xa, 'x' x 125, $key),

    # close with code 1000 and a reason, then trailing data
    'close_reason' => frame(1, 0x8, "\x03\xe8bye", $key)
                      . frame(1, 0x1, 'after', $key),

    # a small frame, then a claimed 2^63 - 1 byte frame
    'oversized_header' => frame(1, 0x2, 'ok', $key)
                          . frame(1, 0x2, '', $key, 9223372036854775807, 64),

    # 16-bit length, and a 64-bit length with a partial payload
    'len16_len64' => frame(1, 0x2, 'b' x 300, $key)
                     . substr(frame(1, 0x2, 'c' x 65536, $key), 0, 600),

    # fragments whose sum goes over 4096 (the second one only claimed)
    'too_big_fragments' => frame(0, 0x2, 'a' x 100, $key)
                           . frame(1, 0x0, '', $key, 3997),

    # invalid UTF-8 (surrogate) split across fragments
    'bad_utf8_split' => frame(0, 0x1, "ok\xed", $key)
                        . frame(1, 0x0, "\xa0\x80", $key),

    # non-minimal 16-bit length, after a valid 4-byte UTF-8 text
    'nonminimal' => frame(1, 0x1, "\xf0\x9f\x98\x80", $key)
                    . frame(1, 0x1, 'short', $key, 5, 16),
);

make_path($dir);

for my $name (sort keys %seeds) {
    open my $fh, '>:raw', "$dir/$name" or die "$dir/$name: $!\n";
    print $fh $seeds{$name};
    close $fh or die "$dir/$name: $!\n";
}

printf "%d seeds written to %s\n", scalar keys %seeds, $dir;
