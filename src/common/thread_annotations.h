// Clang's thread-safety attributes (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html) as
// macros. Under clang with -Wthread-safety they let the compiler check the locking rules a class
// writes down: which mutex guards which member, which functions need it held. Under other
// compilers (GCC builds pycell) they expand to nothing. The `thread_safety` test compiles every
// source file under clang with the analysis on and fails on any warning.
//
// libstdc++'s std::mutex carries no attributes, so guarded state uses pycell::Mutex
// (common/mutex.h) instead.
#pragma once

#if defined(__clang__)
#define PYCELL_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PYCELL_THREAD_ANNOTATION(x)
#endif

// On a class: its objects are capabilities (a mutex), named `x` in diagnostics.
#define CAPABILITY(x) PYCELL_THREAD_ANNOTATION(capability(x))
// On a class: an RAII object that holds a capability for its lifetime (MutexLock).
#define SCOPED_CAPABILITY PYCELL_THREAD_ANNOTATION(scoped_lockable)

// On a member: reading or writing it needs `x` held.
#define GUARDED_BY(x) PYCELL_THREAD_ANNOTATION(guarded_by(x))
// On a pointer member: what it points to needs `x` held (the pointer itself does not).
#define PT_GUARDED_BY(x) PYCELL_THREAD_ANNOTATION(pt_guarded_by(x))

// On a function: the caller must hold these capabilities.
#define REQUIRES(...) PYCELL_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
// On a function: the caller must not hold these (the function takes them itself).
#define EXCLUDES(...) PYCELL_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
// On a function: it takes these capabilities (or `this`, when empty) and returns holding them.
#define ACQUIRE(...) PYCELL_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
// On a function: it releases these capabilities (or `this`, when empty).
#define RELEASE(...) PYCELL_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
// On a function: it takes the capabilities when it returns the first argument (TryLock: true).
#define TRY_ACQUIRE(...) PYCELL_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
// On a function: it returns a reference to capability `x` (an accessor for a private mutex).
#define RETURN_CAPABILITY(x) PYCELL_THREAD_ANNOTATION(lock_returned(x))

// On a function: the analysis skips its body. For code the analysis cannot follow (a lock handed
// across a callback); every use says why beside it.
#define NO_THREAD_SAFETY_ANALYSIS PYCELL_THREAD_ANNOTATION(no_thread_safety_analysis)
