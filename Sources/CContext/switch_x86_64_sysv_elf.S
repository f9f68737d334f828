/*
 * gt_switch_raw / gt_entry_trampoline for x86_64, System V ABI, ELF.
 *
 * Frame saved on the suspended stack by gt_switch_raw (sp points at slot 0):
 *
 *   offset  contents
 *   0x00    x87 control word (2 bytes used)
 *   0x08    MXCSR (4 bytes used)
 *   0x10    r15
 *   0x18    r14
 *   0x20    r13      <- entry argument for a fresh context
 *   0x28    r12      <- entry function for a fresh context
 *   0x30    rbx
 *   0x38    rbp
 *   0x40    return address (gt_entry_trampoline for a fresh context)
 *
 * Only callee-saved state is kept: the caller of gt_switch_raw already
 * assumes every caller-saved register is clobbered by the call.
 */
#if defined(__x86_64__) && defined(__ELF__)

    .text
    .globl gt_switch_raw
    .hidden gt_switch_raw
    .type gt_switch_raw, @function
    .p2align 4
/* void *gt_switch_raw(void **save_sp, void *load_sp, void *data): returns,
 * once resumed, the `data` of whoever resumed us (rdx is never touched). */
gt_switch_raw:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    fnstcw (%rsp)              /* rounding/precision modes belong to the green thread */
    stmxcsr 8(%rsp)

    movq %rsp, (%rdi)          /* publish where we stopped */
    movl 8(%rsp), %eax         /* keep our control words (rax, rcx are scratch) */
    movzwl (%rsp), %ecx
    movq %rsi, %rsp            /* adopt the other stack */

    /* Reloading a control register is slow (microcoded, it stalls the
     * pipeline) and a no-op when both contexts use the same modes, which
     * is almost always: load only what differs. */
    cmpl 8(%rsp), %eax
    jne 2f
1:  cmpw (%rsp), %cx
    jne 3f
0:  addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    movq %rdx, %rax            /* the resumer's `data` is what the resumed call returns */
    ret                        /* into the other context's caller, or the trampoline */
2:  ldmxcsr 8(%rsp)
    jmp 1b
3:  fldcw (%rsp)
    jmp 0b
    .cfi_endproc
    .size gt_switch_raw, .-gt_switch_raw

    .globl gt_entry_trampoline
    .hidden gt_entry_trampoline
    .type gt_entry_trampoline, @function
    .p2align 4
/* First code of a fresh context: r12 = function, r13 = its argument. */
gt_entry_trampoline:
    .cfi_startproc
    .cfi_undefined rip         /* unwinders and debuggers stop here: no caller */
    xorl %ebp, %ebp
    movq %r13, %rdi
    andq $-16, %rsp            /* the ABI wants rsp 16-aligned at the call */
    callq *%r12
    ud2                        /* the entry function never returns */
    .cfi_endproc
    .size gt_entry_trampoline, .-gt_entry_trampoline

#endif

/* The stacks hold data only: keep the linker from marking the binary's stack executable. */
.section .note.GNU-stack,"",%progbits
