from multiprocessing import Pool
import os

def calc_product(num1, num2, num3):
    print(f"Process {os.getpid()} calculating product of {num1, num2, num3}")
    return num1*num2*num3

if __name__ == "__main__":
    with Pool(2) as p:
        result = p.starmap(calc_product, [(1,2,3),(3,4,5)])
    print(f"Result is: {result}")
