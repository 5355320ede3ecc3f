; Linux x86-64, no C library: the mode is the first line of stdin.
section .bss
line:   resb 64
buf:    resb 65536
section .data
hello:  db "hello", 10
pause:  dq 30, 0
section .text
global _start
_start:
        xor     r12, r12                ; length of the first line
.next:  mov     eax, 0                  ; read(0, line + r12, 1)
        xor     edi, edi
        lea     rsi, [line + r12]
        mov     edx, 1
        syscall
        cmp     rax, 1
        jne     .got
        cmp     byte [line + r12], 10
        je      .got
        inc     r12
        cmp     r12, 63
        jb      .next
.got:   mov     al, [line]
        cmp     al, 'h'
        je      do_hello
        cmp     al, 'r'
        je      do_re
        cmp     al, 'c'
        je      do_cpu
        cmp     al, 's'
        je      do_sleep
        cmp     al, 'm'
        je      do_mle
        cmp     al, 'o'
        je      do_ole
        cmp     al, 'e'
        jne     done
        cmp     byte [line + 1], 'x'
        je      do_exit
do_echo:
        mov     eax, 0
        xor     edi, edi
        lea     rsi, [buf]
        mov     edx, 65536
        syscall
        test    rax, rax
        jle     done
        mov     rdx, rax
        mov     eax, 1
        mov     edi, 1
        lea     rsi, [buf]
        syscall
        jmp     do_echo
do_hello:
        mov     eax, 1
        mov     edi, 1
        lea     rsi, [hello]
        mov     edx, 6
        syscall
        jmp     done
do_re:  mov     qword [0], 1
do_cpu: jmp     do_cpu
do_sleep:
        mov     eax, 35                 ; nanosleep(&pause, NULL)
        lea     rdi, [pause]
        xor     esi, esi
        syscall
        jmp     done
do_mle: mov     eax, 9                  ; mmap(NULL, 16 MiB, RW, PRIVATE|ANONYMOUS, -1, 0)
        xor     edi, edi
        mov     esi, 16 << 20
        mov     edx, 3
        mov     r10d, 0x22
        mov     r8, -1
        xor     r9d, r9d
        syscall
        test    rax, rax
        js      nomem
        mov     rcx, 4096
.touch: mov     byte [rax + rcx - 1], 1
        add     rcx, 4096
        cmp     rcx, 16 << 20
        jbe     .touch
        jmp     do_mle
nomem:  mov     edi, 4
        jmp     leave
do_ole: mov     eax, 1
        mov     edi, 1
        lea     rsi, [buf]
        mov     edx, 65536
        syscall
        test    rax, rax
        jns     do_ole
        jmp     done
do_exit:
        mov     edi, 3
        jmp     leave
done:   xor     edi, edi
leave:  mov     eax, 60
        syscall
