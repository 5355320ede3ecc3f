program modes
  implicit none
  character(len=64) :: mode
  character(len=4096) :: line
  integer :: ios, n
  integer, allocatable :: block(:)
  type holder
    integer, allocatable :: a(:)
  end type
  type(holder), allocatable :: held(:), grown(:)
  read (*, '(a)', iostat=ios) mode
  select case (trim(mode))
  case ('hello')
    print '(a)', 'hello'
  case ('echo')
    do
      read (*, '(a)', iostat=ios) line
      if (ios /= 0) exit
      print '(a)', trim(line)
    end do
  case ('re')
    error stop 'boom'
  case ('cpu')
    n = 0
    do
      n = n + 1
      if (n == -5) print *, n
    end do
  case ('sleep')
    call sleep(30)
  case ('mle')
    allocate (held(0))
    do
      allocate (block(4 * 1024 * 1024))
      block = 1
      allocate (grown(size(held) + 1))
      grown(1:size(held)) = held
      call move_alloc(block, grown(size(grown))%a)
      call move_alloc(grown, held)
    end do
  case ('ole')
    do
      write (*, '(a)', advance='no') repeat('x', 65536)
    end do
  case ('exit')
    stop 3
  end select
end program modes
