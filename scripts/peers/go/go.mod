module greenthreads/peers/go

go 1.19
